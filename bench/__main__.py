"""``python -m bench`` (``make bench``): every benchmark in sequence, each in a process of its own.

Each one configures Django for a throwaway deployment of its own, so they cannot share a process.
Options after ``--`` go to every benchmark (``python -m bench -- --quick``); ``--only chat_relay``
runs one. Results: the tables on stdout, JSON under ``bench/results/``, and docs/benchmarks.md
explains them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.harness import ROOT, say

BENCHMARKS = ("chat_relay", "generations", "pages")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=BENCHMARKS, action="append")
    parser.add_argument("--quick", action="store_true", help="smoke-test every benchmark")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- options for every benchmark")
    args = parser.parse_args()
    rest = [a for a in args.rest if a != "--"] + (["--quick"] if args.quick else [])
    failed = []
    started = time.monotonic()
    for name in args.only or BENCHMARKS:
        say(f"\n=== bench.{name} {' '.join(rest)}")
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", *rest], cwd=ROOT)
        if code != 0:
            failed.append(name)
    say(f"\n=== done in {time.monotonic() - started:.0f} s; results in bench/results/")
    if failed:
        say(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
