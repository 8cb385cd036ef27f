"""Webhook throughput of the line against a bare Flask app, on the same server under the same load.

    .venv/bin/python bench/webhooks.py [--calls 60] [--clients 4]

Both apps run on waitress in their own process. The bare app only checks the Twilio signature
and returns fixed TwiML. Each simulated caller places a whole temporary-PIN call (answer,
language, menu, document, number, confirm, three questions), every request signed as Twilio
would sign it; the bare app gets the very same requests. Prints requests per second, latency
percentiles for each, and the ratio.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import requests
from twilio.request_validator import RequestValidator

TOKEN = "bench-token"
OPEN_ALWAYS = json.dumps(
    {
        "weekly": {d: "00:00-23:59" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "holiday_regions": [],
    }
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_line(port: int, data_dir: str) -> None:
    import logging

    import waitress

    from ivr import create_app
    from ivr.settings import Settings

    logging.disable(logging.WARNING)
    settings = Settings(
        data_dir=Path(data_dir),
        public_base_url=f"http://127.0.0.1:{port}",
        twilio_auth_token=TOKEN,
        opening_hours=json.loads(OPEN_ALWAYS),
        caller_verifications_per_hour=10_000,
    )
    waitress.serve(create_app(settings), host="127.0.0.1", port=port, threads=8, _quiet=True)


def _serve_bare(port: int) -> None:
    import waitress
    from flask import Flask, Response, abort, request

    app = Flask("bare")
    validator = RequestValidator(TOKEN)
    base = f"http://127.0.0.1:{port}"
    twiml = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello</Say><Hangup/></Response>'

    @app.post("/voice", defaults={"rest": ""})
    @app.post("/voice/<path:rest>")
    def answer(rest: str) -> Response:
        query = f"?{request.query_string.decode()}" if request.query_string else ""
        if not validator.validate(
            base + request.path + query, request.form, request.headers.get("X-Twilio-Signature", "")
        ):
            abort(403)
        return Response(twiml, mimetype="text/xml")

    waitress.serve(app, host="127.0.0.1", port=port, threads=8, _quiet=True)


def _wait_until_up(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


class Caller:
    """Places one temporary-PIN call; answers questions from the demo register."""

    def __init__(self, base: str, number: int, person: dict, catalog: dict[str, str], follow: bool) -> None:
        self.base, self.person, self.catalog, self.follow = base, person, catalog, follow
        self.http = requests.Session()
        self.form = {
            "CallSid": "CA" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": f"+4560{number:06d}",
            "To": "+4533980010",
        }
        self.latencies: list[float] = []

    def post(self, url: str, **extra: str) -> str:
        form = {**self.form, **extra}
        signature = RequestValidator(TOKEN).compute_signature(url, form)
        start = time.perf_counter()
        answer = self.http.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=30)
        self.latencies.append(time.perf_counter() - start)
        answer.raise_for_status()
        return answer.text

    def run(self) -> list[float]:
        doc = self.person["documents"][0]
        script = ["2", "2", "1" if doc["type"] == "passport" else "2", doc["number"], "1", "?", "?", "?"]
        twiml = self.post(f"{self.base}/voice")
        turn = 1
        for keys in script:
            action = f"{self.base}/voice/keys?turn={turn}"
            if self.follow:
                gather = ET.fromstring(twiml).find("Gather")
                if gather is None:
                    raise RuntimeError(f"the call ended early: {twiml}")
                action = gather.attrib["action"]
                keys = self.answer(twiml) if keys == "?" else keys
            twiml = self.post(action, Digits=keys)
            turn += 1
        if self.follow and "<Hangup" not in twiml:
            raise RuntimeError(f"the call did not end with a PIN: {twiml}")
        return self.latencies

    def answer(self, twiml: str) -> str:
        heard = " ".join(say.text or "" for say in ET.fromstring(twiml).iter("Say"))
        for kind, text in self.catalog.items():
            if text in heard:
                return self.person["facts"][kind]
        raise RuntimeError(f"no question in: {heard}")


def _load(
    base: str, people: list[dict], catalog: dict[str, str], calls: int, clients: int, follow: bool
) -> tuple[float, list[float]]:
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        runs = pool.map(
            lambda i: Caller(base, i, people[i % len(people)], catalog, follow).run(), range(calls)
        )
        latencies = [lat for run in runs for lat in run]
    return time.perf_counter() - start, latencies


def _people() -> tuple[list[dict], dict[str, str]]:
    """Demo people with a passport, a mobile and every fact, and the English question texts."""
    import datetime as dt

    from ivr import demo_people
    from ivr.definitions import load
    from ivr.questions import QUESTIONS
    from ivr.settings import Settings

    settings = Settings()
    _, catalog = load(settings.flows_dir, settings.prompts_dir, settings.flow)
    chosen = []
    for demo in demo_people(settings.demo_seed, settings.demo_people, dt.datetime.now(dt.UTC).date()):
        acc = demo.account
        facts = {kind: q.fact(demo.person) for kind, q in QUESTIONS.items()}
        old_mobile = (
            acc
            and acc.mobile
            and acc.mobile_registered_at
            and (dt.datetime.now(dt.UTC) - acc.mobile_registered_at > dt.timedelta(days=10))
        )
        if demo.person.documents and old_mobile and not demo.backend_fails and all(facts.values()):
            docs = [{"type": d.type.value, "number": d.number} for d in demo.person.documents]
            chosen.append(
                {
                    "documents": docs,
                    "facts": dict(facts),
                }
            )
    return chosen, {kind: catalog["en"].prompts[f"question_{kind}"] for kind in QUESTIONS}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    people, catalog = _people()
    results = {}
    with tempfile.TemporaryDirectory() as data_dir:
        for name, target, extra in (("bare", _serve_bare, ()), ("line", _serve_line, (data_dir,))):
            port = _free_port()
            server = mp.get_context("spawn").Process(target=target, args=(port, *extra), daemon=True)
            server.start()
            try:
                _wait_until_up(port)
                base = f"http://127.0.0.1:{port}"
                _load(base, people[-5:], catalog, 4, 2, name == "line")  # warm up
                elapsed, latencies = _load(base, people, catalog, args.calls, args.clients, name == "line")
            finally:
                server.terminate()
                server.join()
            results[name] = (len(latencies) / elapsed, latencies)
    print(
        f"{args.calls} whole temporary-PIN calls ({args.calls * 9} webhooks), "
        f"{args.clients} concurrent callers, "
        f"waitress 8 threads, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    for name, (rate, lat) in results.items():
        q = [x * 1000 for x in statistics.quantiles(lat, n=100)]
        spread = f"p50 {q[49]:6.1f} ms   p95 {q[94]:6.1f} ms   max {max(lat) * 1000:6.1f} ms"
        print(f"  {name:5} {rate:8.1f} webhooks/s   {spread}")
    print(f"  ratio line/bare: {results['line'][0] / results['bare'][0]:.2f}")


if __name__ == "__main__":
    main()
