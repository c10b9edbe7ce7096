"""The web process keeps to one CPU (``WEB_CPU``, ``config.affinity``). Each case runs in a
process of its own: pinning is for the whole process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.services import ROOT

PROBE = textwrap.dedent(
    """
    import json, os, sys, threading
    from config.affinity import keep_to_one_cpu

    def cpus(thread=0):
        return sorted(os.sched_getaffinity(thread))

    before = threading.Thread(target=threading.Event().wait, daemon=True)  # started before
    before.start()
    try:
        chosen = keep_to_one_cpu(sys.argv[1])
    except Exception as error:
        print(json.dumps({"error": str(error)}))
        raise SystemExit
    seen, recorded, listed = {}, threading.Event(), threading.Event()

    def record():
        seen.update(after=cpus())
        recorded.set()
        listed.wait()  # alive while the threads are listed: an ending one may vanish midway

    after = threading.Thread(target=record)  # started after
    after.start()
    recorded.wait()
    threads = [cpus(int(tid)) for tid in os.listdir("/proc/self/task")]
    listed.set()
    after.join()
    print(json.dumps({"chosen": chosen, "threads": threads, "after": seen["after"]}))
    """
)


def probe(choice: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, choice],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


ALLOWED = sorted(os.sched_getaffinity(0))


def test_auto_keeps_every_thread_before_and_after_to_the_cpu_it_started_on() -> None:
    found = probe("auto")
    if len(ALLOWED) < 2:
        assert found["chosen"] is None and found["after"] == ALLOWED  # nothing to choose
        return
    assert found["chosen"] in ALLOWED
    assert all(cpus == [found["chosen"]] for cpus in found["threads"])
    assert found["after"] == [found["chosen"]]


def test_a_cpu_number_is_that_cpu_and_empty_leaves_threads_to_the_kernel() -> None:
    last = str(ALLOWED[-1])
    found = probe(last)
    assert found["after"] == ([ALLOWED[-1]] if len(ALLOWED) > 1 else ALLOWED)
    assert probe("")["after"] == ALLOWED


def test_a_wrong_choice_is_refused_with_a_sentence() -> None:
    assert "WEB_CPU is empty, 'auto' or a CPU number" in probe("nonsense")["error"]
    assert "WEB_CPU is empty, 'auto' or a CPU number" in probe("²")["error"]
    assert "this process may use" in probe("4096")["error"]
