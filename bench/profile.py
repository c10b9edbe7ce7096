"""Summarise py-spy's collapsed stacks: where the CPU of a profiled window went.

    .venv/bin/python -m bench.profile bench/results/profiles/switchboard-100.txt [--top 30]

Prints the functions by *self* time (the frame on top of the stack) and by *inclusive* time
(anywhere on the stack), as a share of all samples. Idle samples (the event loop waiting in
``select``/``epoll``) are counted apart, so the shares are of busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Leaf frames of threads that wait (py-spy cannot always tell a wait on a lock from work).
IDLE_LEAVES = (
    "select (",
    "poll (",
    "epoll",
    "_worker (concurrent/futures/thread.py)",
    "Condition.wait (",
    "Thread._wait_for_tstate_lock (",
    "Event.wait (",
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` → ``func (pkg/mod.py)``."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(path: Path, top: int = 30, cpu_us: float | None = None) -> str:
    """``cpu_us``: the measured CPU per unit (say per chunk); shares are then shown in µs too."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        total += count
        if not frames or frames[-1].startswith(IDLE_LEAVES):
            idle += count
            continue
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    busy = max(1, total - idle)
    out = [f"{path}: {total} samples, {idle} idle, {busy} busy (shares below are of busy)"]

    def row(frame: str, n: int) -> str:
        share = n / busy
        micro = f"{share * cpu_us:7.1f} µs  " if cpu_us else ""
        return f"  {share * 100:5.1f}%  {micro}{frame}"

    out.append("\nself time")
    out += [row(f, n) for f, n in own.most_common(top)]
    out.append("\ninclusive time")
    out += [row(f, n) for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--cpu-us", type=float, help="measured CPU µs per unit, to scale shares")
    args = parser.parse_args()
    print(summarise(args.path, args.top, args.cpu_us))


if __name__ == "__main__":
    main()
