"""The line's webhooks against a bare Flask app, fairly; and the line under callers at a human pace.

    .venv/bin/python bench/webhooks.py [--postgres] [--runs 3] [--calls 120]
    .venv/bin/python bench/webhooks.py human [--postgres] [--simultaneous 500] [--capacity]

Both apps run on waitress with `ivr serve`'s settings (8 threads), each in its own process pinned
to CPU 0; the client is one asyncio process (aiohttp) pinned to CPU 1, so it never competes with
the server it measures (its own CPU use is printed: a client near 100% would be the bottleneck).
The line is `ivr serve` itself, on a fresh data directory (SQLite, or with `--postgres` a
throwaway PostgreSQL cluster made with the installed `initdb`/`pg_ctl`, on CPU 1 as well).

The bare app checks the Twilio signature (one HMAC, as the line does) and answers fixed TwiML of
the line's shape: a `<Gather>` holding a `<Say>`, then a `<Redirect>`.

Default mode, closed loop: N callers each place whole temporary-PIN calls back to back (answer,
language, menu, document number, confirm, three questions whose answers the client looks
up in the demo register, then the PIN by SMS): 8 webhooks a call, every one signed as Twilio
signs it. The bare app gets the very same requests. At 4 and at 32 calls in flight, the two apps
are measured alternately (bare, line, bare, line, ...) `--runs` times in one run, so a busy
moment on the machine hits both; printed: webhooks/s, p50/p99 of each, the server process's CPU
time (user and system, from /proc) a webhook, the ratio line/bare with min/median/max over the
runs, and the line's PIN webhook (the last: the verification is decided and the SMS sent)
against a menu webhook (the third: the main menu).

`human`: open-loop arrivals (Poisson) of whole calls at the rate that keeps `--simultaneous`
calls going, each caller keying 2-4 s (uniform) after hearing the line's answer. After a warm-up
of one call's length, for `--seconds`: webhooks, p50/p99/max latency and errors. `--capacity`
then raises the number of simultaneous calls until p99 passes 200 ms: the line's server has
one core, so that is how many calls one core carries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from twilio.request_validator import RequestValidator

TOKEN = "bench-token-" + "7" * 20
SERVER_CPU, CLIENT_CPU = 0, 1
REPO = Path(__file__).resolve().parent.parent
IVR = Path(sys.executable).parent / "ivr"
OPEN_ALWAYS = json.dumps(
    {
        "weekly": {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "holiday_regions": [],
    }
)
DEMO_PEOPLE = 4000  # enough distinct identities that no two calls in flight claim the same one
PIN_WEBHOOK, MENU_WEBHOOK = 7, 2
_FLUSH = " (synchronous_commit=off)" if "--no-flush-wait" in sys.argv else ""


# -- the servers -------------------------------------------------------------------------------

SERVER_PIDS: dict[str, int] = {}


def server_cpu(base: str) -> float:
    """CPU seconds (user and system) the server at `base` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{SERVER_PIDS[base]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pinned(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > cpu:  # type: ignore[operator]
        os.sched_setaffinity(0, {cpu})


def _wait_until_up(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the server on port {port} exited:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server on port {port} did not start:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def _server(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=lambda: _pinned(SERVER_CPU)
        )
    try:
        _wait_until_up(port, process, log)
        base = f"http://127.0.0.1:{port}"
        SERVER_PIDS[base] = process.pid
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def line_server(work: Path, database_url: str | None, threads: int = 8) -> Iterator[str]:
    """`ivr serve` on a fresh data directory, open around the clock, no per-number limit."""
    port = _free_port()
    data = work / f"line-{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IVR_")},
        "IVR_DATA_DIR": str(data),
        "IVR_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "IVR_TWILIO_AUTH_TOKEN": TOKEN,
        "IVR_OPENING_HOURS": OPEN_ALWAYS,
        "IVR_CALLER_VERIFICATIONS_PER_HOUR": "1000000",
        "IVR_DEMO_PEOPLE": str(DEMO_PEOPLE),
        "IVR_SECRET_KEY": "bench-secret-" + "5" * 40,  # required on a shared database
    }
    if database_url:
        env["IVR_DATABASE_URL"] = database_url
    args = [str(IVR), "serve", "--port", str(port), "--threads", str(threads)]
    with _server(args, env, port, work / f"line-{port}.log") as base:
        yield base


@contextlib.contextmanager
def bare_server(work: Path, threads: int = 8) -> Iterator[str]:
    port = _free_port()
    args = [sys.executable, __file__, "_bare", str(port), str(threads)]
    with _server(args, dict(os.environ), port, work / f"bare-{port}.log") as base:
        yield base


def serve_bare(port: int, threads: int) -> None:
    """The bare app: the signature checked (one HMAC), then fixed TwiML of the line's shape."""
    import hmac

    from flask import Flask, Response, abort, request
    from twilio.twiml.voice_response import VoiceResponse
    from waitress.server import create_server

    app = Flask("bare")
    validator = RequestValidator(TOKEN)
    base = f"http://127.0.0.1:{port}"
    response = VoiceResponse()
    gather = response.gather(input="dtmf", action=f"{base}/voice/keys?turn=1", method="POST", timeout=6)
    gather.say("Press 1 for English. Tryk 2 for dansk.", voice="Polly.Amy", language="en-GB")
    response.redirect(f"{base}/voice/keys?turn=1", method="POST")
    twiml = str(response)

    @app.post("/voice", defaults={"rest": ""})
    @app.post("/voice/<path:rest>")
    def answer(rest: str) -> Response:
        query = f"?{request.query_string.decode()}" if request.query_string else ""
        expected = validator.compute_signature(base + request.path + query, request.form)
        if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
            abort(403)
        return Response(twiml, mimetype="text/xml")

    from ivr.web import MAX_BODY

    create_server(
        app,
        host="127.0.0.1",
        port=port,
        threads=threads,
        max_request_body_size=MAX_BODY,
        connection_limit=1000,
        channel_timeout=15,
    ).run()


@contextlib.contextmanager
def throwaway_postgres(work: Path, synchronous_commit: bool = True) -> Iterator[str]:
    """A PostgreSQL cluster from the installed binaries (as tests/postgres.py makes), on CPU 1."""
    import glob

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    initdb = Path(found[-1]) if found else Path(shutil.which("initdb") or "initdb")
    bin_dir = initdb.parent
    root = os.geteuid() == 0
    home = work / "pg"
    home.mkdir()
    if root:
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(work, "postgres", "postgres")
    user = "postgres" if root else os.environ.get("USER", "postgres")
    owner = ["runuser", "-u", "postgres", "--"] if root else []
    port = _free_port()
    run = {"check": True, "capture_output": True, "preexec_fn": lambda: _pinned(CLIENT_CPU)}
    subprocess.run(
        [*owner, str(bin_dir / "initdb"), "-D", str(home / "data"), "-U", user, "-A", "trust"]
        + ["-E", "UTF8", "--locale=C", "--no-sync"],
        **run,  # type: ignore[arg-type]
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not synchronous_commit:  # a commit waits for no disk flush (what a fast disk would give)
        options += " -c synchronous_commit=off"
    pg_ctl = [*owner, str(bin_dir / "pg_ctl"), "-D", str(home / "data")]
    subprocess.run([*pg_ctl, "-o", options, "-l", str(home / "log"), "-w", "start"], **run)  # type: ignore[arg-type]
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE ivr_bench")
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/ivr_bench"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)


# -- the callers -------------------------------------------------------------------------------


@dataclass
class Person:
    documents: list[dict[str, str]]
    facts: dict[str, str]


def people_and_questions() -> tuple[list[Person], dict[str, str]]:
    """Demo people with a document, an old mobile and every fact; the English question texts."""
    from ivr import demo_people
    from ivr.definitions import load
    from ivr.questions import QUESTIONS
    from ivr.settings import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    _, catalog = load(settings.flows_dir, settings.prompts_dir, settings.flow)
    now = dt.datetime.now(dt.UTC)
    chosen = []
    for demo in demo_people(settings.demo_seed, DEMO_PEOPLE, now.date()):
        acc = demo.account
        facts = {kind: q.fact(demo.person) for kind, q in QUESTIONS.items()}
        old_mobile = bool(
            acc
            and acc.mobile
            and acc.mobile_registered_at
            and now - acc.mobile_registered_at > dt.timedelta(days=10)
        )
        if demo.person.documents and old_mobile and not demo.backend_fails and all(facts.values()):
            docs = [{"type": d.type.value, "number": d.number} for d in demo.person.documents]
            chosen.append(Person(docs, {k: str(v) for k, v in facts.items()}))
    return chosen, {kind: catalog["en"].prompts[f"question_{kind}"] for kind in QUESTIONS}


class Failed(Exception):
    pass


@dataclass
class Client:
    """Places signed calls; `follow` (the line) reads each answer, the bare app's is ignored."""

    base: str
    people: list[Person]
    questions: dict[str, str]
    follow: bool
    http: aiohttp.ClientSession
    signer: RequestValidator = field(default_factory=lambda: RequestValidator(TOKEN))
    latencies: list[list[float]] = field(default_factory=lambda: [[] for _ in range(8)])
    sent_at: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    next_person: int = 0

    async def post(self, url: str, form: dict[str, str], index: int) -> str:
        headers = {"X-Twilio-Signature": self.signer.compute_signature(url, form)}
        start = time.perf_counter()
        async with self.http.post(url, data=form, headers=headers) as answer:
            text = await answer.text()
            status = answer.status
        elapsed = time.perf_counter() - start
        self.latencies[index].append(elapsed)
        self.sent_at.append((start, elapsed))
        if status != 200:
            raise Failed(f"HTTP {status} at webhook {index}")
        return text

    async def call(self, pause: tuple[float, float] | None = None) -> None:
        """One whole temporary-PIN call; with `pause`, keying that long after each answer."""
        person = self.people[self.next_person % len(self.people)]
        self.next_person += 1
        doc = person.documents[0]
        form = {
            "CallSid": "CA" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": f"+4520{random.randrange(10**6):06d}",
            "To": "+4533980010",
        }
        script = ["2", "2", doc["number"], "1", "?", "?", "?"]
        try:
            twiml = await self.post(f"{self.base}/voice", form, 0)
            for index, keys in enumerate(script, start=1):
                if pause:
                    await asyncio.sleep(random.uniform(*pause))
                action = f"{self.base}/voice/keys?turn={index}"
                if self.follow:
                    gather = ET.fromstring(twiml).find("Gather")
                    if gather is None:
                        raise Failed(f"the call ended early at webhook {index}: {twiml[:300]}")
                    action = gather.attrib["action"]
                    keys = self.answer(person, twiml) if keys == "?" else keys
                twiml = await self.post(action, {**form, "Digits": keys}, index)
            if self.follow and ("<Hangup" not in twiml or "<Gather" in twiml):
                raise Failed("the call did not end with a PIN sent")
        except (TimeoutError, Failed, aiohttp.ClientError) as error:
            self.errors += 1
            self.first_error = self.first_error or f"{type(error).__name__}: {error}"

    def answer(self, person: Person, twiml: str) -> str:
        heard = " ".join(say.text or "" for say in ET.fromstring(twiml).iter("Say"))
        for kind, text in self.questions.items():
            if text in heard:
                return person.facts[kind]
        raise Failed("no question heard")


def _session(limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))


async def closed_loop(client: Client, calls: int, in_flight: int) -> float:
    """`calls` whole calls, `in_flight` at a time back to back; the seconds it took."""
    left = calls

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await client.call()

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(in_flight)))
    return time.perf_counter() - start


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def fair(args: argparse.Namespace, work: Path, database_url: str | None) -> None:
    people, questions = people_and_questions()
    random.shuffle(people)
    print(
        f"closed loop: whole temporary-PIN calls (8 webhooks each), {args.calls} calls a measurement; "
        f"each app on waitress, 8 threads, pinned to CPU {SERVER_CPU}; aiohttp client on CPU {CLIENT_CPU}; "
        f"store {'PostgreSQL' if database_url else 'SQLite'}{_FLUSH}; Python {sys.version.split()[0]}"
    )
    with line_server(work, database_url) as line_base, bare_server(work) as bare_base:

        async def measure() -> None:
            offset = 0
            for in_flight in args.in_flight:
                async with _session(in_flight) as http:
                    ratios, rows = [], []
                    for run in range(args.runs + 1):  # the first round warms both up, unreported
                        results = {}
                        for name, base in (("bare", bare_base), ("line", line_base)):
                            share = people[offset:] + people[:offset]
                            client = Client(base, share, questions, name == "line", http)
                            cpu, served = time.process_time(), server_cpu(base)
                            calls = args.calls if run else max(8, in_flight)
                            elapsed = await closed_loop(client, calls, in_flight)
                            cpu = (time.process_time() - cpu) / elapsed
                            offset = (offset + calls) % len(people)
                            every = [x for per in client.latencies for x in per]
                            served = (server_cpu(base) - served) / len(every)
                            results[name] = (len(every) / elapsed, every, client, cpu, served)
                        if not run:
                            continue
                        (bare_rate, bare_lat, _, bare_cpu, bare_served) = results["bare"]
                        (line_rate, line_lat, line_client, line_cpu, line_served) = results["line"]
                        ratios.append(line_rate / bare_rate)
                        pin = _ms(line_client.latencies[PIN_WEBHOOK], 0.5)
                        menu = _ms(line_client.latencies[MENU_WEBHOOK], 0.5)
                        bare_q = f"p50 {_ms(bare_lat, 0.5):5.1f} p99 {_ms(bare_lat, 0.99):6.1f} ms"
                        line_q = f"p50 {_ms(line_lat, 0.5):5.1f} p99 {_ms(line_lat, 0.99):6.1f} ms"
                        rows.append(
                            f"  {in_flight:3} in flight, run {run}: "
                            f"bare {bare_rate:7.0f}/s {bare_q} "
                            f"(server {1000 * bare_served:.2f} ms CPU/webhook, client {bare_cpu:4.0%}) | "
                            f"line {line_rate:6.0f}/s {line_q} "
                            f"(server {1000 * line_served:.2f} ms CPU/webhook, client {line_cpu:4.0%}), "
                            f"errors {line_client.errors} | ratio {line_rate / bare_rate:.2f} | "
                            f"PIN p50 {pin:5.1f} ms, menu p50 {menu:5.1f} ms ({pin / menu:.1f}x)"
                        )
                        print(rows[-1], flush=True)
                        if line_client.errors:
                            print(f"    first error: {line_client.first_error}", flush=True)
                    print(
                        f"  {in_flight:3} in flight: ratio line/bare min {min(ratios):.2f} "
                        f"median {statistics.median(ratios):.2f} max {max(ratios):.2f}",
                        flush=True,
                    )

        asyncio.run(measure())


# -- callers at a human pace -------------------------------------------------------------------

PAUSE = (2.0, 4.0)
CALL_SECONDS = 7 * sum(PAUSE) / 2  # seven keyings a call


async def human_load(
    base: str, people: list[Person], questions: dict[str, str], n: int, seconds: float
) -> dict:
    """Open-loop arrivals keeping `n` calls going; latencies of the webhooks sent in the window."""
    rate = n / CALL_SECONDS
    async with _session(0) as http:
        client = Client(base, people, questions, True, http)
        calls: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        warm, end = start + CALL_SECONDS, start + CALL_SECONDS + seconds
        cpu = time.process_time()
        arrival = start
        while arrival < end:  # on a schedule of its own: a busy client loop does not thin it out
            await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
            task = asyncio.create_task(client.call(PAUSE))
            calls.add(task)
            task.add_done_callback(calls.discard)
            arrival += random.expovariate(rate)
        cpu = (time.process_time() - cpu) / (end - start)
        in_progress = len(calls)
        await asyncio.gather(*calls)
    window = [lat for at, lat in client.sent_at if warm <= at < end]
    return {
        "webhooks": len(window),
        "per_second": len(window) / seconds,
        "p50": _ms(window, 0.5),
        "p99": _ms(window, 0.99),
        "max": _ms(window, 1.0),
        "errors": client.errors,
        "in_progress": in_progress,
        "client_cpu": cpu,
    }


def human(args: argparse.Namespace, work: Path, database_url: str | None) -> None:
    people, questions = people_and_questions()
    random.shuffle(people)
    store = f"PostgreSQL{_FLUSH}" if database_url else "SQLite"
    print(
        f"human pace: open-loop arrivals, each caller keys {PAUSE[0]:.0f}-{PAUSE[1]:.0f} s after the answer "
        f"(a call ~{CALL_SECONDS:.0f} s, 8 webhooks); `ivr serve` (8 threads) on one core "
        f"(CPU {SERVER_CPU}), "
        f"client{' and PostgreSQL' if database_url else ''} on CPU {CLIENT_CPU}; store {store}; "
        f"{args.seconds:.0f} s measured after {CALL_SECONDS:.0f} s of warm-up"
    )
    levels = [args.simultaneous]
    if args.capacity:
        levels += [
            level for level in (750, 1000, 1250, 1500, 2000, 2500, 3000, 4000) if level > args.simultaneous
        ]
    with line_server(work, database_url) as base:
        asyncio.run(human_load(base, people, questions, 50, 3))  # warm up
        for n in levels:
            r = asyncio.run(human_load(base, people, questions, n, args.seconds))
            print(
                f"  {n:5} simultaneous calls ({r['in_progress']:.0f} at the end): "
                f"{r['per_second']:6.1f} webhooks/s, "
                f"p50 {r['p50']:6.1f} ms, p99 {r['p99']:7.1f} ms, max {r['max']:7.1f} ms, "
                f"errors {r['errors']} (client CPU {r['client_cpu']:.0%})",
                flush=True,
            )
            if r["p99"] > 200:
                break


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        serve_bare(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", choices=("fair", "human"), default="fair")
    parser.add_argument("--postgres", action="store_true", help="the line's store on a throwaway PostgreSQL")
    parser.add_argument(
        "--no-flush-wait",
        action="store_true",
        help="PostgreSQL with synchronous_commit=off: commits do not wait for this machine's disk",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=120, help="whole calls a measurement (closed loop)")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--simultaneous", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--capacity", action="store_true", help="raise the load until p99 passes 200 ms")
    args = parser.parse_args()
    _pinned(CLIENT_CPU)
    work = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    try:
        postgres = throwaway_postgres(work, not args.no_flush_wait) if args.postgres else None
        with postgres or contextlib.nullcontext() as database_url:
            (human if args.mode == "human" else fair)(args, work, database_url)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
