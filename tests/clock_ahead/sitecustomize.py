"""Moves the wall clock CLOCK_AHEAD_DAYS days ahead in every Python process started with this
folder on PYTHONPATH (`make test-ahead`): the test run, its workers and the servers its tests
start. time-machine moves `time.time` and `datetime.now` and leaves the monotonic clock and
timed waits alone (libfaketime makes those hang). A test that mixes the suite's fixed clock with
the wall clock, and so would fail on a later day, fails in this run today.
"""

import os

_DAYS = os.environ.get("CLOCK_AHEAD_DAYS")
if _DAYS:
    import datetime as _dt
    import time as _time

    import time_machine

    _AHEAD = _dt.datetime.now(_dt.UTC) + _dt.timedelta(days=float(_DAYS))
    time_machine.travel(_AHEAD, tick=True).start()
    # time-machine's clock starts ticking at its first reading, not at `start`: read it now, or a
    # process that idles first (a server waiting for its first request) runs that much behind
    # the others, and their clocks disagree.
    _time.time()
