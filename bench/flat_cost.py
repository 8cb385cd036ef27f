"""Flat cost: start-up and memory against the size of the demo register, and webhook latency
against the number of calls the store holds.

    .venv/bin/python bench/flat_cost.py [--people 1000,100000,1000000] [--calls 1000,1000000]
                                        [--work /tmp/ivr-flat-cost] [--rounds 3] [--pin-calls 20]

Register: for each size, `ivr demo build --people N` into a data directory of its own under
`--work` (kept: the next run reuses it; the build's time is printed when it happens), then
`ivr serve` is started `--rounds` times on it and timed from the spawn to the first answer (an
unsigned POST /voice, refused with 403: the line is up). Its resident memory (VmRSS) is read
when it answers, and again after five whole temporary-PIN calls through it.

Stored calls: for each count, a data directory (the 1,000-people register) whose store is
seeded with that many synthetic ended calls (scrubbed state, a goodbye as last reply, one audit
event each, an SMS row for every other one, an escalation for every tenth). One `ivr serve` per
directory, then rounds alternate between them: each round places `--pin-calls` whole PIN calls
(the README's script, as `ivr call --keys` runs it) one after another, timing every webhook.
Prints p50 / p95 per count and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
IVR = str(Path(sys.executable).with_name("ivr"))
TOKEN = "bench-flat-cost-token"
OPEN_ALWAYS = json.dumps(
    {
        "weekly": dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "00:00-24:00"),
        "holiday_regions": [],
    }
)
PIN_KEYS = "2 2 100000001# 1 ? ? ?"  # English, temporary PIN, Mette Hansen's passport, confirm, answers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path, base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    return {
        **env,
        "IVR_DATA_DIR": str(data_dir),
        "IVR_PUBLIC_BASE_URL": base,
        "IVR_TWILIO_AUTH_TOKEN": TOKEN,
        "IVR_OPENING_HOURS": OPEN_ALWAYS,
        "IVR_SECRET_KEY": "bench-flat-cost-secret-key-0123456789abcdef",
        "IVR_CALLER_VERIFICATIONS_PER_HOUR": "100000",
        "IVR_DEMO_PEOPLE": "1000",
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Server:
    """`ivr serve` on a data directory, timed from the spawn to its first answer."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = _env(data_dir, self.base)
        self.log = data_dir.parent / "serve.log"  # a file, not a pipe nobody reads (it would fill up)
        started = time.perf_counter()
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [IVR, "serve", "--port", str(self.port)],
                env=self.env,
                cwd=data_dir.parent,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"ivr serve exited: {self.log.read_text()}")
            try:
                if requests.post(f"{self.base}/voice", timeout=5).status_code == 403:
                    break
            except requests.ConnectionError:
                time.sleep(0.005)
        self.startup = time.perf_counter() - started
        self.rss_at_start = _rss_mb(self.process.pid)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class TimedTransport:
    """HttpTransport, keeping each request's time."""

    def __init__(self, base: str) -> None:
        from ivr.phone import HttpTransport

        self.inner = HttpTransport(base, base)
        self.times: list[float] = []

    def send(self, request):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        answer = self.inner.send(request)
        self.times.append(time.perf_counter() - started)
        return answer


def pin_calls(server: Server, count: int, callers: Iterator[int]) -> list[float]:
    """`count` whole PIN calls, one after another; every webhook's latency in seconds."""
    from ivr import create_app
    from ivr.demo_caller import ScriptedKeys
    from ivr.phone import place_call
    from ivr.settings import Settings

    os.environ.update({k: v for k, v in server.env.items() if k.startswith("IVR_")})
    app = create_app(Settings(data_dir=server.data_dir))  # only to answer the questions as Mette
    times: list[float] = []
    for _ in range(count):
        script = ScriptedKeys(PIN_KEYS.split(), app)
        transport = TimedTransport(server.base)
        out = io.StringIO()
        call = place_call(
            transport, server.base, TOKEN, script, script.listening(out), caller=f"+4529{next(callers):06d}"
        )
        if "ending in 5, 1" not in out.getvalue() or call.ended_by != "hangup":
            raise RuntimeError(f"the PIN call did not end with the SMS sent:\n{out.getvalue()}")
        times += transport.times
    return times


# -- the register -----------------------------------------------------------------------------------


def register_dir(work: Path, people: int) -> Path:
    data = work / f"people-{people}" / "data"
    if not (data / "mitid-demo.sqlite3").exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        env = _env(data, "http://127.0.0.1:8080")
        started = time.perf_counter()
        subprocess.run(
            [IVR, "demo", "build", "--people", str(people)], env=env, check=True, stdout=subprocess.DEVNULL
        )
        print(f"  built {people:>9,} people once in {time.perf_counter() - started:7.1f} s", flush=True)
    return data


def bench_register(work: Path, sizes: list[int], rounds: int) -> None:
    print(f"start-up and memory of `ivr serve` against the demo register ({rounds} starts each)")
    dirs = {people: register_dir(work, people) for people in sizes}
    results: dict[int, list[tuple[float, float]]] = {people: [] for people in sizes}
    for _ in range(rounds):  # alternate the sizes
        for people in sizes:
            server = Server(dirs[people])
            results[people].append((server.startup, server.rss_at_start))
            server.stop()
    after: dict[int, float] = {}
    callers = iter(range(10**6))
    for people in sizes:
        server = Server(dirs[people])
        pin_calls(server, 5, callers)
        after[people] = _rss_mb(server.process.pid)
        server.stop()
    print(
        f"{'people':>10} | {'start-up s (min / median / max)':>32} | {'RSS at start MB':>15} | "
        "RSS after 5 calls MB"
    )
    for people in sizes:
        starts = sorted(s for s, _ in results[people])
        rss = statistics.median(r for _, r in results[people])
        spread = f"{starts[0]:.2f} / {statistics.median(starts):.2f} / {starts[-1]:.2f}"
        print(f"{people:>10,} | {spread:>32} | {rss:>15.1f} | {after[people]:.1f}")
    first, last = sizes[0], sizes[-1]
    ratio = statistics.median(r for _, r in results[last]) / statistics.median(r for _, r in results[first])
    print(
        f"RSS at start, {last:,} against {first:,} people: {ratio:.3f}x; after 5 calls: "
        f"{after[last] / after[first]:.3f}x"
    )


# -- stored calls -----------------------------------------------------------------------------------


def calls_dir(work: Path, calls: int) -> Path:
    """A data directory (1,000 people) whose store holds `calls` synthetic ended calls."""
    data = work / f"calls-{calls}" / "data"
    marker = data / "seeded"
    if marker.exists():
        return data
    data.mkdir(parents=True, exist_ok=True)
    env = _env(data, "http://127.0.0.1:8080")
    subprocess.run([IVR, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    seed_calls(data / "ivr.sqlite3", calls)
    marker.write_text(str(calls))
    print(f"  seeded {calls:>9,} ended calls once in {time.perf_counter() - started:7.1f} s", flush=True)
    return data


def seed_calls(path: Path, count: int) -> None:
    import sqlalchemy as sa

    from ivr.store import audit_events, call_sessions, escalations, make_engine, sms_outbox

    engine = make_engine(f"sqlite:///{path}")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    from ivr.state import CallState

    def state(sid: str) -> str:
        return CallState(
            call_sid=sid, caller_key="0" * 64, step="goodbye", language="en", turn=9, ended=True
        ).model_dump_json()

    reply = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Goodbye.</Say><Hangup /></Response>'
    batch = 20_000
    with engine.begin() as connection:
        for first in range(0, count, batch):
            numbers = range(first, min(count, first + batch))
            sids = [f"CA{n:032x}" for n in numbers]
            times = [start + dt.timedelta(seconds=n * 7) for n in numbers]
            connection.execute(
                sa.insert(call_sessions),
                [
                    {
                        "call_sid": sid,
                        "state": state(sid),
                        "turn": 9,
                        "reply": reply,
                        "started_at": at,
                        "updated_at": at,
                        "ended": True,
                    }
                    for sid, at in zip(sids, times, strict=True)
                ],
            )
            connection.execute(
                sa.insert(audit_events),
                [
                    {"at": at, "call_sid": sid, "event": "call_ended", "detail": "{}"}
                    for sid, at in zip(sids, times, strict=True)
                ],
            )
            connection.execute(
                sa.insert(sms_outbox),
                [
                    {
                        "key": f"{sid}:pin",
                        "call_sid": sid,
                        "to": "+45 …51",
                        "body": "temporary_pin",
                        "status": "sent",
                        "created_at": at,
                        "sent_at": at,
                        "provider_id": f"SM{sid[2:]}",
                        "delivery": "delivered",
                        "delivery_at": at,
                    }
                    for n, sid, at in zip(numbers, sids, times, strict=True)
                    if n % 2 == 0
                ],
            )
            connection.execute(
                sa.insert(escalations),
                [
                    {
                        "call_sid": sid,
                        "created_at": at,
                        "language": "en",
                        "intent": "temporary_pin",
                        "verification": "passed",
                        "reason": "caller_choice",
                        "step": "main_menu",
                        "status": "finished",
                        "finished_at": at,
                    }
                    for n, sid, at in zip(numbers, sids, times, strict=True)
                    if n % 10 == 0
                ],
            )
    engine.dispose()


def bench_calls(work: Path, counts: list[int], rounds: int, per_round: int) -> None:
    print(
        f"webhook latency against the calls stored ({rounds} rounds of {per_round} PIN calls each, "
        "alternating)"
    )
    dirs = {calls: calls_dir(work, calls) for calls in counts}
    servers = {calls: Server(dirs[calls]) for calls in counts}
    times: dict[int, list[float]] = {calls: [] for calls in counts}
    callers = iter(range(10**6))
    try:
        for calls in counts:  # one call each first: warm both alike
            pin_calls(servers[calls], 1, callers)
        for _ in range(rounds):
            for calls in counts:
                times[calls] += pin_calls(servers[calls], per_round, callers)
    finally:
        for server in servers.values():
            server.stop()
    print(f"{'stored calls':>12} | {'webhooks':>8} | {'p50 ms':>7} | {'p95 ms':>7} | {'mean ms':>7}")
    for calls in counts:
        ts = sorted(times[calls])
        p95 = ts[int(len(ts) * 0.95)]
        print(
            f"{calls:>12,} | {len(ts):>8} | {statistics.median(ts) * 1000:>7.2f} | {p95 * 1000:>7.2f} | "
            f"{statistics.fmean(ts) * 1000:>7.2f}"
        )
    first, last = counts[0], counts[-1]
    ratio = statistics.median(times[last]) / statistics.median(times[first])
    print(f"p50, {last:,} against {first:,} stored calls: {ratio:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", default="1000,100000,1000000")
    parser.add_argument("--calls", default="1000,1000000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ivr-flat-cost"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pin-calls", type=int, default=20)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.people:
        bench_register(args.work, [int(n) for n in args.people.split(",")], args.rounds)
    if args.calls:
        bench_calls(args.work, [int(n) for n in args.calls.split(",")], args.rounds, args.pin_calls)


if __name__ == "__main__":
    main()
