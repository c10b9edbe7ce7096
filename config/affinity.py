"""Keep the web process on one CPU (``WEB_CPU``; ``make run`` sets ``auto``).

A web process is an event loop plus the threads where consumers and relays make their database
calls (``config.async_db``). Python runs one of them at a time (the GIL), and they hand it to
each other many times per chat send: on two cores every handoff wakes the other core (0.1–0.4 ms
in a virtual machine whose idle cores sleep), on one it is a context switch. The process cannot
use more than a core's worth of Python anyway. Measured at 100 chat streams on two cores
(docs/benchmarks.md, paired runs): time to first token p50 5–9 ms and p99 28–40 ms lower, CPU
per relayed chunk 10 % lower; at 1,000 streams 37 % more chunks per second.

``make run`` sets ``WEB_CPU=auto`` unless ``WEB_CPU`` is set (empty turns it off). Run several web
processes on a machine with one CPU each (``WEB_CPU=0``, ``WEB_CPU=1``, …): ``auto`` takes the
CPU the process happens to start on, which two processes may share. Off by default elsewhere:
importing ``config.asgi`` in a test process must not pin the tests and the servers they start.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


def keep_to_one_cpu(choice: str) -> int | None:
    """Pin this process, its threads and those it starts later, to one CPU: ``auto`` the one it
    runs on now, a number that CPU, ``""`` none (the kernel places threads). Returns the CPU, or
    ``None`` when nothing was pinned (no choice, one CPU only, or no way to tell or to pin)."""
    if not choice:
        return None
    if choice != "auto" and not (choice.isascii() and choice.isdigit()):
        raise ImproperlyConfigured(f"WEB_CPU is empty, 'auto' or a CPU number, not {choice!r}.")
    if not hasattr(os, "sched_setaffinity"):  # not Linux
        logger.warning("WEB_CPU=%s ignored: this system cannot pin a process to a CPU", choice)
        return None
    allowed = os.sched_getaffinity(0)
    try:
        cpu = current_cpu() if choice == "auto" else int(choice)
    except OSError:  # no /proc
        logger.warning("WEB_CPU=auto ignored: /proc does not say which CPU this is")
        return None
    if cpu not in allowed:
        raise ImproperlyConfigured(f"WEB_CPU={choice}: this process may use {sorted(allowed)}.")
    if len(allowed) < 2:
        return None
    os.sched_setaffinity(0, {cpu})  # this thread, and so every thread it starts from now on
    with contextlib.suppress(OSError):  # the threads started before (none, usually)
        for thread in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                os.sched_setaffinity(int(thread), {cpu})
    return cpu


def current_cpu() -> int:
    """The CPU this thread last ran on (field 39 of ``/proc/thread-self/stat``)."""
    stat = Path("/proc/thread-self/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[36])
