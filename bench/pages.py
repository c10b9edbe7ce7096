"""Pages: requests per second and latency of the chat and gallery pages, and their SQL queries.

    .venv/bin/python -m bench.pages [--rows 1,20,200] [--connections 8] [--duration 10] [--quick]

One signed-in user owns ``rows`` conversations (two messages each; the open one has ``rows``
messages) and ``rows`` finished generations with an output each. For each row count, every page
is rendered once in-process with Django's test client and its SQL queries counted: the count
must not grow with the rows (no N+1). At the largest row count, the web process as ``make run``
starts it is loaded by ``--connections`` kept-alive clients for ``--duration`` seconds per page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import harness
from bench.chat_relay import run_loadgen
from bench.harness import ROOT, say, summary_ms, table
from tests.services import start_sandbox

PAGES = {
    "chat": "/chat/",
    "conversation": "/chat/{conversation}/",
    "gallery": "/generations/",
}


def populate(user: Any, rows: int) -> int:
    """Bring the user's data up to ``rows`` of each kind; returns the newest conversation's id."""
    from django.utils import timezone

    from chat.models import Conversation, Message
    from generations.models import Generation, GenerationOutput

    now = timezone.now()
    have = Conversation.objects.filter(user=user).count()
    conversations = Conversation.objects.bulk_create(
        Conversation(user=user, title=f"Conversation {i}: how does a relay work?", model="")
        for i in range(have, rows)
    )
    Message.objects.bulk_create(
        message
        for conversation in conversations
        for message in (
            Message(conversation=conversation, role="user", content="How does a relay work?"),
            Message(
                conversation=conversation,
                role="assistant",
                content="A relay reads the stream and hands it on. " * 20,
                model_served="mistralai/mistral-7b-instruct:free",
                prompt_tokens=12,
                completion_tokens=180,
                finish_reason="stop",
            ),
        )
    )
    newest = Conversation.objects.filter(user=user).order_by("-updated_at", "-pk").first()
    assert newest is not None
    have_messages = newest.messages.count()
    Message.objects.bulk_create(
        Message(
            conversation=newest,
            role="user" if i % 2 == 0 else "assistant",
            content=f"Message {i}. " + "Some text of a typical length. " * 8,
        )
        for i in range(have_messages, rows)
    )
    have = Generation.objects.filter(user=user).count()
    done = Generation.State.SUCCEEDED
    generations = Generation.objects.bulk_create(
        Generation(
            user=user,
            prompt=f"a small wooden chair number {i}",
            state=done,
            attempts=1,
            started_at=now - dt.timedelta(seconds=30),
            finished_at=now,
        )
        for i in range(have, rows)
    )
    GenerationOutput.objects.bulk_create(
        GenerationOutput(
            generation=g,
            index=0,
            file=f"generations/{user.pk}/{g.pk}/output-0.ply",
            size=123_456,
            sha256="0" * 64,
            content_type="application/x-ply",
        )
        for g in generations
    )
    return newest.pk


def count_queries(user: Any, paths: dict[str, str]) -> dict[str, dict[str, Any]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    counts = {}
    for name, path in paths.items():
        client.get(path)  # first render: template loading, caches
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        counts[name] = {
            "status": response.status_code,
            "queries": len(captured.captured_queries),
            "sql": [q["sql"][:300] for q in captured.captured_queries],
            "bytes": len(response.content),
        }
    return counts


def load(
    deploy: harness.Deployment, cookie: str, paths: dict[str, str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    web, port = deploy.start_web()
    results = []
    try:
        for name, path in paths.items():
            spec = {
                "mode": "get",
                "host": "127.0.0.1",
                "port": port,
                "streams": args.connections,
                "ramp": 0.0,
                "warmup": 1.0,
                "duration": args.duration,
                "grace": 30.0,
                "stream_timeout": 30.0,
                "settle": 0.2,
                "http_request": (
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
                    "Accept: text/html\r\n\r\n"
                ),
            }
            profile = None
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                profile = (web.process.pid, args.profile / f"page-{name}.txt")
            with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
                raw = run_loadgen(spec, {"web": web.process.pid}, Path(tmp), profile)
            window = raw["window_s"]
            latency = summary_ms(raw["ttft_s"])
            results.append(
                {
                    "page": name,
                    "path": path,
                    "requests": latency["n"],
                    "per_s": latency["n"] / window,
                    "latency_ms": latency,
                    "errors": sum(raw["errors"].values()),
                    "error_reasons": raw["errors"],
                    "web_cpu_pct": raw["cpu_s"]["web"] / window * 100,
                    "loadgen_cpu_pct": raw["cpu_s"]["loadgen"] / window * 100,
                    "web_ms_cpu_per_request": raw["cpu_s"]["web"] / max(1, latency["n"]) * 1000,
                }
            )
            say(f"    {name}: {results[-1]['per_s']:.0f}/s, p99 {latency['p99']:.1f} ms")
    finally:
        deploy.stop(web)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__)
    parser.add_argument("--rows", default="1,20,200", help="row counts for the query counts")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per page")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="a smoke test: under a minute")
    parser.add_argument("--profile", type=Path, help="py-spy the web process into this folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.duration = "1,200", 2.0
    levels = sorted(int(n) for n in args.rows.split(","))
    started = time.monotonic()
    config = {
        "rows": levels,
        "connections": args.connections,
        "duration_s": args.duration,
        "database": args.database,
    }
    say(f"pages: {json.dumps(config)}")
    # An upstream as deployed: the gallery's form suggests OpenRouter's 3D models, read from the
    # cached model list (without one, every render would try to fetch it and log the failure).
    sandbox, sandbox_url = start_sandbox()
    try:
        with harness.deployment(database=args.database, openrouter_url=sandbox_url) as deploy:
            (user,) = harness.bench_users(1, prefix="pages")
            (cookie,) = harness.session_cookies([user])
            queries: dict[int, dict[str, Any]] = {}
            paths: dict[str, str] = {}
            for rows in levels:
                conversation = populate(user, rows)
                paths = {name: p.format(conversation=conversation) for name, p in PAGES.items()}
                queries[rows] = count_queries(user, paths)
                counts = {name: q["queries"] for name, q in queries[rows].items()}
                say(f"[{harness.elapsed(started)}] {rows} rows: queries {counts}")
            say(f"[{harness.elapsed(started)}] load at {levels[-1]} rows…")
            loads = load(deploy, cookie, paths, args)
    finally:
        sandbox.stop()
    constant = {
        name: len({queries[rows][name]["queries"] for rows in levels}) == 1 for name in PAGES
    }
    payload = {
        "machine": harness.machine(),
        "config": config,
        "queries": queries,
        "queries_constant": constant,
        "load": loads,
    }
    path = harness.write_json("pages", payload)
    say(report(levels, queries, constant, loads))
    say(f"\nJSON: {path.relative_to(ROOT)}  ({harness.elapsed(started)})")
    return payload


def report(
    levels: list[int],
    queries: dict[int, dict[str, Any]],
    constant: dict[str, bool],
    loads: list[dict[str, Any]],
) -> str:
    first = table(
        "SQL queries per page, by rows in the database",
        ["page", *(f"{rows} rows" for rows in levels), "constant"],
        [
            [name, *(queries[rows][name]["queries"] for rows in levels), constant[name]]
            for name in PAGES
        ],
    )
    second = table(
        f"Load at {levels[-1]} rows (kept-alive connections, web process as `make run` starts it)",
        [
            "page",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "web CPU %",
            "ms CPU/req",
            "loadgen CPU %",
        ],
        [
            [
                r["page"],
                r["per_s"],
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
                r["latency_ms"]["max"],
                r["errors"],
                r["web_cpu_pct"],
                r["web_ms_cpu_per_request"],
                r["loadgen_cpu_pct"],
            ]
            for r in loads
        ],
    )
    return first + "\n" + second


if __name__ == "__main__":
    main()
