"""Chat relay: what a relay between a client and the model costs, side by side, in one run.

    .venv/bin/python -m bench.chat_relay [--streams 1,10,100,1000] [--duration 20] [--quick]

For each concurrency level, one after the other on the same sandbox upstream (same prompt, same
model, same token rate, same stream length):

* ``direct``: clients read the sandbox's SSE stream themselves — the limit;
* ``litellm``: LiteLLM's proxy (its own venv, ``bench/.venv-litellm``, one worker) relaying the
  sandbox as an OpenAI-compatible provider;
* ``switchboard``: signed-in websocket clients of the web process as ``make run`` starts it (the
  Procfile's ``web`` line: uvicorn, asyncio's loop, httptools, websockets), the real Redis
  channel layer and the configured database (SQLite by default, ``--database postgres``),
  ``DEBUG=0``.

Every relay process is started afresh for each level, so its memory figures belong to that level.
The load generator (``bench.loadgen``) is one uvloop process; its CPU is reported beside every
figure, because on two cores it saturates before the relay does. ``added`` = the relay's
percentile minus direct's percentile in the same run and level.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import harness
from bench.harness import ROOT, Sampler, say, summary_ms, table
from tests.services import Service, free_port, start_sandbox, wait_for

# Free (a thousand streams spend no credit), and not a Llama: for Llama names LiteLLM fetches a
# tokenizer from the Hugging Face hub on every request, which this offline machine cannot reach.
MODEL = "mistralai/mistral-7b-instruct:free"
PROMPT = "Explain how a relay works"
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
LITELLM_REQUIREMENTS = ROOT / "bench" / "requirements-litellm.txt"
LITELLM_MASTER_KEY = "sk-bench-litellm-master-key"
TARGETS = ("direct", "litellm", "switchboard")


# --- the relays ----------------------------------------------------------------------------------


def litellm_ensure() -> Path:
    """The bench-only venv with LiteLLM's proxy, created from the pinned requirements if missing."""
    binary = LITELLM_VENV / "bin" / "litellm"
    # By content, not modification time: a fresh clone or a checkout touches the file.
    pinned = hashlib.sha256(LITELLM_REQUIREMENTS.read_bytes()).hexdigest()[:16]
    stamp = LITELLM_VENV / f".installed-{pinned}"
    if binary.exists() and stamp.exists():
        return binary
    say(f"Creating {LITELLM_VENV.relative_to(ROOT)} (LiteLLM proxy; once, a few minutes)…")
    if not (LITELLM_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(LITELLM_REQUIREMENTS)], check=True)
    for old in LITELLM_VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return binary


@contextlib.contextmanager
def without_env(keys: list[str]) -> Iterator[None]:
    """Hide this process's Django settings from a child that must not see them (LiteLLM reads
    ``DATABASE_URL`` and ``REDIS_URL`` itself)."""
    saved = {key: os.environ.pop(key) for key in keys if key in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def litellm_start(
    sandbox_url: str, key: str, workdir: Path, hidden: list[str]
) -> tuple[Service, int]:
    binary = litellm_ensure()
    port = free_port()
    config = {  # YAML is a superset of JSON: no YAML writer needed here
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"{sandbox_url}/api/v1",
                    "api_key": key,
                },
            }
        ],
        "litellm_settings": {"drop_params": True, "telemetry": False},
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
    }
    path = workdir / "litellm.yaml"
    path.write_text(json.dumps(config, indent=2))
    env = {
        "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
        "HF_HUB_OFFLINE": "1",  # nothing may try the network (it would only time out here)
        "TRANSFORMERS_OFFLINE": "1",
    }
    args = [str(binary), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    with without_env(hidden):
        service = Service("litellm", [*args, "--num_workers", "1"], env=env, log_dir=workdir)
    url = f"http://127.0.0.1:{port}/health/liveliness"
    try:
        wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, "LiteLLM", timeout=180)
    except RuntimeError:
        service.stop()
        raise RuntimeError(f"LiteLLM did not start:\n{service.log()[-3000:]}") from None
    return service, port


def http_request(port: int, path: str, key: str, body: dict[str, Any]) -> str:
    payload = json.dumps(body, separators=(",", ":"))
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload.encode())}\r\n\r\n{payload}"
    )


# --- one measurement -----------------------------------------------------------------------------


def run_loadgen(
    spec: dict[str, Any],
    watched: dict[str, int],
    workdir: Path,
    profile: tuple[int, Path] | None = None,
) -> dict[str, Any]:
    """Run the load generator; read the servers' CPU at the window's edges and their peak RSS.

    ``profile`` = (pid, path): py-spy samples that process over the window into ``path``
    (collapsed stacks; ``python -m bench.profile PATH`` summarises them).
    """
    spec_path = workdir / "spec.json"
    spec["result"] = str(workdir / "result.json")
    spec_path.write_text(json.dumps(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", str(spec_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    limit = 60 + spec["ramp"] + spec["warmup"] + spec["duration"] + spec["grace"] + 30
    watchdog = threading.Timer(limit, process.kill)
    watchdog.start()
    watched = {**watched, "loadgen": process.pid}
    cpu: dict[str, dict[str, float]] = {}
    cpu_system: dict[str, dict[str, float]] = {}
    base_rss: dict[str, int] = {}
    sampler: Sampler | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            marker = line.split()[0]
            if marker == "primed":
                base_rss = Sampler(watched).rss()
                sampler = Sampler(watched).__enter__()
            elif marker in ("warm", "end"):
                cpu[marker] = Sampler(watched).cpu()
                cpu_system[marker] = Sampler(watched).cpu_system()
                if marker == "warm" and profile is not None:
                    spy = harness.py_spy(profile[0], profile[1], spec["duration"])
        process.wait()
    finally:
        if spy is not None:
            spy.wait(timeout=60)
        watchdog.cancel()
        if sampler is not None:
            sampler.__exit__()
    if process.returncode != 0 or "end" not in cpu:
        raise RuntimeError(f"the load generator failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(Path(spec["result"]).read_text())
    result["cpu_s"] = {name: cpu["end"][name] - cpu["warm"].get(name, 0.0) for name in cpu["end"]}
    result["cpu_s"]["loadgen"] = result["loadgen_cpu_s"]
    result["cpu_system_s"] = {
        name: cpu_system["end"][name] - cpu_system["warm"].get(name, 0.0)
        for name in cpu_system["end"]
    }
    result["rss_base"] = base_rss
    result["rss_peak"] = sampler.peak if sampler else {}
    return result


def figures(target: str, level: int, raw: dict[str, Any], relay: str | None) -> dict[str, Any]:
    window = raw["window_s"]
    chunks = raw["chunks_in_window"]
    cpu = raw["cpu_s"]
    row: dict[str, Any] = {
        "target": target,
        "streams": level,
        "ttft_ms": summary_ms(raw["ttft_s"]),
        "gap_ms": summary_ms(raw["gaps_s"]),
        "chunks_per_s": chunks / window,
        "streams_ok": raw["streams_ok"],
        "streams_started": raw["streams_started"],
        "errors": sum(raw["errors"].values()) + sum(raw["prime_errors"].values()),
        "error_reasons": {**raw["prime_errors"], **raw["errors"]},
        "cpu_pct": {name: seconds / window * 100 for name, seconds in cpu.items()},
        "loadgen_cpu_pct": cpu["loadgen"] / window * 100,
    }
    if relay is not None:
        relay_cpu = cpu[relay]
        peak, base = raw["rss_peak"].get(relay, 0), raw["rss_base"].get(relay, 0)
        row |= {
            "relay_cpu_s": relay_cpu,
            "relay_cpu_system_share": raw["cpu_system_s"][relay] / relay_cpu if relay_cpu else None,
            "relay_cpu_ms_per_chunk": relay_cpu / chunks * 1000 if chunks else None,
            "relay_peak_rss_mib": peak / 2**20,
            "relay_base_rss_mib": base / 2**20,
            "relay_rss_per_stream_kib": (peak - base) / level / 1024,
        }
    total = sum(cpu.values()) / window * 100
    limits = []
    if row["loadgen_cpu_pct"] >= 85:
        limits.append("load generator (one core)")
    if relay is not None and row["cpu_pct"][relay] >= 85:
        limits.append("relay (one core)")
    if total >= 170:
        limits.append(f"machine CPU ({total:.0f}% of 200%)")
    row["total_cpu_pct"] = total
    row["limited_by"] = ", ".join(limits)
    row["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return row


def add_deltas(rows: list[dict[str, Any]]) -> None:
    """``added`` = this target's percentile minus direct's, same level, same run."""
    direct = {r["streams"]: r for r in rows if r["target"] == "direct"}
    for row in rows:
        base = direct.get(row["streams"])
        if base is None or row["target"] == "direct":
            continue
        for metric in ("ttft_ms", "gap_ms"):
            row[f"added_{metric}"] = {
                p: row[metric][p] - base[metric][p] for p in ("p50", "p99", "max")
            }


# --- the run -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_relay", description=__doc__)
    parser.add_argument("--streams", default="1,10,100,1000", help="concurrency levels")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds after ramp")
    parser.add_argument("--token-delay", type=float, default=0.02, help="sandbox s per token")
    parser.add_argument("--prompt", default=PROMPT, help="the answer's length follows from it")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--no-deflate", action="store_true", help="no permessage-deflate offer")
    parser.add_argument("--debug", action="store_true", help="run the web process with DEBUG=1")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the web process, e.g. --env DB_CONN_MAX_AGE=600",
    )
    parser.add_argument(
        "--uvicorn-arg",
        action="append",
        default=[],
        help="an extra uvicorn option for the web process, e.g. --uvicorn-arg=--ws=wsproto",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke test: under a minute")
    parser.add_argument(
        "--profile", type=Path, help="py-spy each relay over the window into this folder"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.duration, args.warmup = "10", 3.0, 0.5
    levels = [int(n) for n in args.streams.split(",")]
    targets = [t for t in args.targets.split(",") if t]
    started = time.monotonic()

    from openrouter.sandbox.replies import reply_text, tokenize

    expected = reply_text(model=MODEL, prompt=args.prompt)
    sandbox, sandbox_url = start_sandbox(token_delay=args.token_delay)
    # The sandbox waits ten token delays (at most 0.25 s) before its first chunk.
    stream_s = min(0.25, 10 * args.token_delay) + len(tokenize(expected)) * args.token_delay
    config = {
        "model": MODEL,
        "prompt": args.prompt,
        "reply_tokens": len(tokenize(expected)),
        "reply_chars": len(expected),
        "token_delay_s": args.token_delay,
        "stream_s_unloaded": stream_s,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "levels": levels,
        "targets": targets,
        "database": args.database,
        "ws_deflate": not args.no_deflate,
        "debug": args.debug,
        "uvicorn_args": args.uvicorn_arg,
        "env": args.env,
    }
    say(f"chat relay: {json.dumps(config)}")
    rows: list[dict[str, Any]] = []
    try:
        key = httpx.post(f"{sandbox_url}/_sandbox/keys", json={"label": "bench"}).json()["key"]
        with harness.deployment(
            database=args.database,
            openrouter_url=sandbox_url,
            debug=args.debug,
            extra_env=dict(item.split("=", 1) for item in args.env),
        ) as deploy:
            cookies: list[str] = []
            if "switchboard" in targets:
                users = harness.bench_users(max(levels) + 1, prefix="chat")
                cookies = harness.session_cookies(users)
            for level in levels:
                for target in targets:
                    say(f"[{harness.elapsed(started)}] {target}, {level} streams…")
                    raw, relay = measure(
                        target,
                        level,
                        args,
                        deploy,
                        sandbox,
                        sandbox_url,
                        key,
                        cookies,
                        expected,
                        ramp=stream_s if level > 1 else 0.0,
                    )
                    rows.append(figures(target, level, raw, relay))
                    say("   ", brief(rows[-1]))
    finally:
        sandbox.stop()
    add_deltas(rows)
    payload = {"machine": harness.machine(), "config": config, "rows": rows}
    path = harness.write_json("chat_relay", payload)
    say(report(rows))
    say(f"\nJSON: {path.relative_to(ROOT)}  ({harness.elapsed(started)})")
    return payload


def measure(
    target: str,
    level: int,
    args: argparse.Namespace,
    deploy: harness.Deployment,
    sandbox: Service,
    sandbox_url: str,
    key: str,
    cookies: list[str],
    expected: str,
    *,
    ramp: float,
) -> tuple[dict[str, Any], str | None]:
    """One target at one level. ``ramp``: the clients' starts are spread over it; one answer's
    length, so that the sends of streams run back to back stay evenly spread (with a shorter
    ramp they came in waves: at 100 streams, every send of a 2.06 s cycle within 0.7 s)."""
    spec: dict[str, Any] = {
        "streams": level,
        "ramp": ramp,
        "warmup": args.warmup,
        "duration": args.duration,
        "grace": 30.0,
        "stream_timeout": 60.0,
        "expected_chars": len(expected),
        "host": "127.0.0.1",
    }
    body = {"model": MODEL, "messages": [{"role": "user", "content": args.prompt}], "stream": True}
    watched = {"sandbox": sandbox.process.pid}
    service: Service | None = None
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        workdir = Path(tmp)
        try:
            if target == "direct":
                port = int(sandbox_url.rsplit(":", 1)[1])
                spec |= {"mode": "sse", "port": port}
                spec["http_request"] = http_request(port, "/api/v1/chat/completions", key, body)
                relay = None
            elif target == "litellm":
                service, port = litellm_start(sandbox_url, key, workdir, list(deploy.env))
                spec |= {"mode": "sse", "port": port}
                body["model"] = "bench"
                spec["http_request"] = http_request(
                    port, "/v1/chat/completions", LITELLM_MASTER_KEY, body
                )
                relay = "litellm"
                watched["litellm"] = service.process.pid
            else:
                service, port = deploy.start_web(extra=args.uvicorn_arg)
                spec |= {
                    "mode": "ws",
                    "port": port,
                    "ws_uri": f"ws://127.0.0.1:{port}/ws/chat/",
                    "origin": f"http://127.0.0.1:{port}",
                    "cookies": cookies[1 : level + 1],
                    "prime_cookie": cookies[0],
                    "deflate": not args.no_deflate,
                    "ws_message": switchboard_message(args.prompt),
                }
                relay = "web"
                watched |= {"web": service.process.pid, "redis": deploy.services[0].process.pid}
                if deploy.database == "postgres":
                    watched["postgres"] = deploy.services[1].process.pid
            profile = None
            if args.profile and relay is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                path = args.profile / f"{target}-{level}.txt"
                profile = (watched[relay], path)
            raw = run_loadgen(spec, watched, workdir, profile)
        finally:
            if service is not None:
                if target == "switchboard":
                    deploy.stop(service)
                else:
                    service.stop()
    return raw, relay


def switchboard_message(prompt: str) -> dict[str, Any]:
    """The ``send`` frame of chat/protocol.py: a new conversation, the bench prompt and model."""
    return {"type": "send", "conversation": None, "text": prompt, "model": MODEL}


# --- output --------------------------------------------------------------------------------------


def brief(row: dict[str, Any]) -> str:
    parts = [
        f"ttft p50 {row['ttft_ms']['p50']:.1f} ms p99 {row['ttft_ms']['p99']:.1f} ms",
        f"gap p50 {row['gap_ms']['p50']:.2f} p99 {row['gap_ms']['p99']:.2f} ms",
        f"{row['chunks_per_s']:.0f} chunks/s",
        f"errors {row['errors']}",
        f"loadgen {row['loadgen_cpu_pct']:.0f}%",
    ]
    if "relay_cpu_ms_per_chunk" in row:
        parts.append(f"relay {row['relay_cpu_ms_per_chunk'] or 0:.3f} ms CPU/chunk")
        parts.append(f"{(row['relay_cpu_system_share'] or 0) * 100:.0f}% of it in the kernel")
    if row["error_reasons"]:
        parts.append(json.dumps(row["error_reasons"])[:200])
    return "; ".join(parts)


def report(rows: list[dict[str, Any]]) -> str:
    latency = table(
        "Latency seen by the client (ms); added = minus direct, same level",
        [
            "streams",
            "target",
            "ttft p50",
            "ttft p99",
            "ttft max",
            "+ttft p50",
            "+ttft p99",
            "gap p50",
            "gap p99",
            "gap max",
            "+gap p50",
            "+gap p99",
        ],
        [
            [
                r["streams"],
                r["target"],
                r["ttft_ms"]["p50"],
                r["ttft_ms"]["p99"],
                r["ttft_ms"]["max"],
                r.get("added_ttft_ms", {}).get("p50"),
                r.get("added_ttft_ms", {}).get("p99"),
                r["gap_ms"]["p50"],
                r["gap_ms"]["p99"],
                r["gap_ms"]["max"],
                r.get("added_gap_ms", {}).get("p50"),
                r.get("added_gap_ms", {}).get("p99"),
            ]
            for r in rows
        ],
    )
    cost = table(
        "Throughput and cost (CPU % of one core over the window)",
        [
            "streams",
            "target",
            "chunks/s",
            "ok",
            "errors",
            "relay CPU %",
            "ms CPU/chunk",
            "peak RSS MiB",
            "KiB/stream",
            "loadgen CPU %",
            "sandbox CPU %",
            "limited by",
        ],
        [
            [
                r["streams"],
                r["target"],
                f"{r['chunks_per_s']:.0f}",
                r["streams_ok"],
                r["errors"],
                r["cpu_pct"].get({"litellm": "litellm", "switchboard": "web"}.get(r["target"], "")),
                r.get("relay_cpu_ms_per_chunk"),
                r.get("relay_peak_rss_mib"),
                r.get("relay_rss_per_stream_kib"),
                r["loadgen_cpu_pct"],
                r["cpu_pct"].get("sandbox"),
                r["limited_by"],
            ]
            for r in rows
        ],
    )
    return latency + "\n" + cost


if __name__ == "__main__":
    main()
