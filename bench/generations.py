"""Generations: how fast an idle worker picks a job up, and whether workers scale.

    .venv/bin/python -m bench.generations [--count 200] [--workers 1,2,4] [--quick]

* Queue-to-start: one generation at a time with an idle worker; the time from the row being
  created (``created_at``, in the same transaction that dispatches the task on commit) to the
  worker claiming it (``started_at``). Both stamps come from the same clock.
* Throughput: ``--count`` generations submitted at once, upstream answering after
  ``--generation-delay`` seconds (the sandbox's slow 3D model), with the Celery worker of the
  Procfile at ``--concurrency`` 1, 2 and 4 (prefork processes). Throughput is generations per
  second from the first submission to the last finish; linear means N workers give N times the
  one-worker figure.

Jobs are submitted through ``generations.services.generation_start``, as the form view does.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench import harness
from bench.harness import ROOT, Sampler, say, summary_ms, table
from tests.services import Service, start_sandbox

PROMPT = "a small wooden chair"


def worker_command(deploy: harness.Deployment, concurrency: int) -> list[str]:
    """The Procfile's worker, at ``concurrency``, its beat schedule file in the bench's var."""
    args = harness.procfile_command("worker")
    if "--concurrency" in args:
        args[args.index("--concurrency") + 1] = str(concurrency)
    else:
        args += ["--concurrency", str(concurrency)]
    if "--schedule" in args:
        args[args.index("--schedule") + 1] = str(deploy.var / "celerybeat-schedule")
    if "--loglevel" in args:
        args[args.index("--loglevel") + 1] = "WARNING"  # INFO logs every task: noise, not work
    return args


def submit(user: Any, count: int) -> list[int]:
    from generations import services

    return [
        services.generation_start(
            user=user,
            prompt=PROMPT,
            model="openai/shap-e",
            num_inference_steps=32,
            num_outputs=1,
            extension="ply",
        ).pk
        for _ in range(count)
    ]


def wait_done(ids: list[int], timeout: float) -> list[Any]:
    from generations.models import Generation

    deadline = time.monotonic() + timeout
    finished = (Generation.State.SUCCEEDED, Generation.State.FAILED)
    while time.monotonic() < deadline:
        rows = list(Generation.objects.filter(pk__in=ids))
        if len(rows) == len(ids) and all(row.state in finished for row in rows):
            return rows
        time.sleep(0.01 if len(ids) == 1 else 0.2)
    raise RuntimeError(f"{len(ids)} generations not finished within {timeout:.0f} s")


def start_worker(deploy: harness.Deployment, concurrency: int, user: Any) -> Service:
    service = Service(
        f"worker{concurrency}",
        worker_command(deploy, concurrency),
        env=deploy.env,
        log_dir=deploy.var,
    )
    deploy.services.append(service)
    # Ready once it has run a job (the first one also warms every process's imports).
    try:
        wait_done(submit(user, concurrency), timeout=120)
    except RuntimeError:
        raise RuntimeError(f"the worker did not run jobs:\n{service.log()[-3000:]}") from None
    return service


def queue_to_start(deploy: harness.Deployment, user: Any, samples: int) -> dict[str, Any]:
    worker = start_worker(deploy, 1, user)
    try:
        latencies, errors = [], 0
        for _ in range(samples):
            time.sleep(0.2)  # the worker is idle, waiting on the broker
            (row,) = wait_done(submit(user, 1), timeout=60)
            if row.state != "succeeded" or row.started_at is None:
                errors += 1
                continue
            latencies.append((row.started_at - row.created_at).total_seconds())
    finally:
        deploy.stop(worker)
    return {"queue_to_start_ms": summary_ms(latencies), "errors": errors}


def throughput(
    deploy: harness.Deployment, user: Any, workers: int, count: int, sandbox: Service
) -> dict[str, Any]:
    worker = start_worker(deploy, workers, user)
    watched = {"worker": worker.process.pid, "sandbox": sandbox.process.pid}
    try:
        with Sampler(watched) as sampler:
            cpu0 = sampler.cpu()
            started = time.monotonic()
            ids = submit(user, count)
            submitted = time.monotonic() - started
            rows = wait_done(ids, timeout=count * 10 + 60)
            cpu1 = sampler.cpu()
    finally:
        deploy.stop(worker)
    first = min(row.created_at for row in rows)
    last = max(row.finished_at for row in rows if row.finished_at)
    span = (last - first).total_seconds()
    succeeded = sum(row.state == "succeeded" for row in rows)
    return {
        "workers": workers,
        "count": count,
        "succeeded": succeeded,
        "failed": count - succeeded,
        "submit_s": submitted,
        "span_s": span,
        "per_s": count / span,
        "queue_to_start_ms": summary_ms(
            [(r.started_at - r.created_at).total_seconds() for r in rows if r.started_at]
        ),
        "run_ms": summary_ms(
            [(r.finished_at - r.started_at).total_seconds() for r in rows if r.finished_at]
        ),
        "cpu_s": {name: cpu1[name] - cpu0[name] for name in cpu1},
        "cpu_pct": {name: (cpu1[name] - cpu0[name]) / span * 100 for name in cpu1},
        "worker_peak_rss_mib": sampler.peak["worker"] / 2**20,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.generations", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="generations per throughput run")
    parser.add_argument("--workers", default="1,2,4", help="worker processes to compare")
    parser.add_argument("--generation-delay", type=float, default=0.5, help="upstream seconds")
    parser.add_argument("--samples", type=int, default=30, help="queue-to-start samples")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="a smoke test: under a minute")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.samples, args.generation_delay, args.workers = 16, 5, 0.2, "1,2"
    levels = [int(n) for n in args.workers.split(",")]
    started = time.monotonic()
    config = {
        "count": args.count,
        "workers": levels,
        "generation_delay_s": args.generation_delay,
        "samples": args.samples,
        "database": args.database,
    }
    say(f"generations: {json.dumps(config)}")
    sandbox, sandbox_url = start_sandbox(generation_delay=args.generation_delay)
    try:
        with harness.deployment(database=args.database, openrouter_url=sandbox_url) as deploy:
            (user,) = harness.bench_users(1, prefix="gen")
            say(f"[{harness.elapsed(started)}] queue-to-start, idle worker…")
            latency = queue_to_start(deploy, user, args.samples)
            say("   ", json.dumps(latency))
            runs = []
            for workers in levels:
                say(f"[{harness.elapsed(started)}] {args.count} generations, {workers} workers…")
                runs.append(throughput(deploy, user, workers, args.count, sandbox))
                say(f"    {runs[-1]['per_s']:.2f}/s, {runs[-1]['failed']} failed")
    finally:
        sandbox.stop()
    base = runs[0]["per_s"] / runs[0]["workers"]
    for run in runs:
        run["linear_ratio"] = run["per_s"] / (base * run["workers"])
    payload = {"machine": harness.machine(), "config": config, "queue": latency, "runs": runs}
    path = harness.write_json("generations", payload)
    say(report(latency, runs, args.generation_delay))
    say(f"\nJSON: {path.relative_to(ROOT)}  ({harness.elapsed(started)})")
    return payload


def report(latency: dict[str, Any], runs: list[dict[str, Any]], delay: float) -> str:
    q = latency["queue_to_start_ms"]
    first = table(
        "Queue to start, idle worker (ms)",
        ["samples", "p50", "p99", "max", "errors"],
        [[q["n"], q["p50"], q["p99"], q["max"], latency["errors"]]],
    )
    second = table(
        f"Throughput, upstream {delay:.2f} s per generation",
        [
            "workers",
            "done",
            "failed",
            "span s",
            "per s",
            "vs linear",
            "run p50 ms",
            "backlog wait p99 ms",
            "worker CPU %",
            "sandbox CPU %",
            "worker RSS MiB",
        ],
        [
            [
                r["workers"],
                r["succeeded"],
                r["failed"],
                r["span_s"],
                r["per_s"],
                f"{r['linear_ratio'] * 100:.0f}%",
                r["run_ms"]["p50"],
                r["queue_to_start_ms"]["p99"],
                r["cpu_pct"]["worker"],
                r["cpu_pct"]["sandbox"],
                r["worker_peak_rss_mib"],
            ]
            for r in runs
        ],
    )
    return first + "\n" + second


if __name__ == "__main__":
    main()
