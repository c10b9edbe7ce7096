"""Keep the web process on one CPU (``WEB_CPU``; the Procfile sets ``auto``).

A web process is an event loop plus the threads where consumers and relays make their database
calls (``config.async_db``). Python runs one of them at a time (the GIL), and they hand it to
each other many times per chat send: on two cores every handoff wakes the other core (0.1–0.4 ms
in a virtual machine whose idle cores sleep), on one it is a context switch. The process cannot
use more than a core's worth of Python anyway. Measured at 100 chat streams on two cores
(docs/benchmarks.md): added time to first token p50 ~9 → ~4 ms, p99 ~43 → ~14 ms, CPU per
relayed chunk −12 %; at 1,000 streams 37 % more chunks per second.

Run several web processes on a machine with one CPU each (``WEB_CPU=0``, ``WEB_CPU=1``, …):
``auto`` takes the CPU the process happens to start on, which two processes may share.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def keep_to_one_cpu(choice: str) -> int | None:
    """Pin this process, its threads and those it starts later, to one CPU: ``auto`` the one it
    runs on now, a number that CPU, ``""`` none (the kernel places threads). Returns the CPU, or
    ``None`` when nothing was pinned (no choice, one CPU only, or not Linux)."""
    if not choice or not hasattr(os, "sched_setaffinity"):
        return None
    if choice != "auto" and not choice.isdigit():
        raise ImproperlyConfigured(f"WEB_CPU is empty, 'auto' or a CPU number, not {choice!r}.")
    allowed = os.sched_getaffinity(0)
    cpu = current_cpu() if choice == "auto" else int(choice)
    if cpu not in allowed:
        raise ImproperlyConfigured(f"WEB_CPU={choice}: this process may use {sorted(allowed)}.")
    if len(allowed) < 2:
        return None
    for thread in os.listdir("/proc/self/task"):  # the threads started so far, this one included
        os.sched_setaffinity(int(thread), {cpu})
    return cpu


def current_cpu() -> int:
    """The CPU this thread last ran on (field 39 of ``/proc/self/stat``)."""
    stat = Path("/proc/thread-self/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[36])
