"""The sweep, run on its own beside the server: scrub stale calls every so often."""

from __future__ import annotations

import logging
import threading

from ivr.errors import without_values
from ivr.line import Line

log = logging.getLogger(__name__)


def start(line: Line, interval: float) -> threading.Event:
    """Sweep now and then every `interval` seconds in a daemon thread; set the event to stop."""
    stop = threading.Event()

    def run() -> None:
        while True:
            try:
                swept = line.sweep()
                if swept:
                    log.info("swept %d stale calls", swept)
            except Exception as error:  # the store may be away for a while: try again later
                log.error("the sweep failed: %s", without_values(error))
            if stop.wait(interval):
                return

    threading.Thread(target=run, name="ivr-sweep", daemon=True).start()
    return stop
