"""Run the test suite as several pytest processes, two at a time, and fail if any of them fails.

Why several processes: a single pytest process that compiles every algorithm's XLA programs has twice ended in
a segmentation fault inside XLA's compiler after ~20 minutes (root cause not found); each group below compiles
a fraction of them. Why two at a time: most of the suite's time is XLA compilation, which is single-threaded,
so two processes keep both cores of a 2-core machine busy. Each group's output is printed when it ends.

    python3 ci/run_tests.py              # every group, two lanes (CI, after `pip install -e ".[test]"`)
    python3 ci/run_tests.py --jobs 1     # one group after another
    python3 ci/run_tests.py --list       # the groups
Extra arguments after `--` go to every pytest process (e.g. `-- -m "not slow"`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]

# (name, command); the longest first (as measured, BENCHMARKS.md "Test suite"), so that the two lanes end close
# together. Every test file belongs to exactly one pytest group.
GROUPS: list[tuple[str, list[str]]] = [
    ("other algorithm families", PYTEST + ["tests/algos", "--ignore=tests/algos/offpolicy",
                                           "--ignore=tests/algos/tabular"]),
    ("everything else", PYTEST + ["tests", "--ignore=tests/algos", "--ignore=tests/runs",
                                  "--ignore=tests/test_cli.py"]),
    ("offpolicy+tabular", PYTEST + ["tests/algos/offpolicy", "tests/algos/tabular"]),
    ("runs+cli", PYTEST + ["tests/runs", "tests/test_cli.py"]),
    ("gymnasium 0.29.1", ["sh", "ci/gym029.sh"]),
]


def run(name: str, cmd: list[str], extra: list[str]) -> tuple[str, int, float, str]:
    start = time.monotonic()
    full = cmd + extra if cmd[:len(PYTEST)] == PYTEST else cmd
    proc = subprocess.run(full, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=os.environ.copy())
    elapsed = time.monotonic() - start
    print(f"\n===== {name}: exit {proc.returncode} after {elapsed / 60:.1f} min: {' '.join(full)}\n{proc.stdout}",
          flush=True)
    return name, proc.returncode, elapsed, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="pytest processes at a time (default 2)")
    parser.add_argument("--list", action="store_true", help="print the groups and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only the named group (repeatable)")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    groups = [g for g in GROUPS if not args.only or g[0] in args.only]
    if args.list or not groups:
        for name, cmd in GROUPS:
            print(f"{name}: {' '.join(cmd)}")
        return 0 if args.list else 2
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda g: run(*g, extra), groups))
    print(f"\n===== {len(results)} groups in {(time.monotonic() - start) / 60:.1f} min")
    for name, code, elapsed, out in results:
        summary = next((line for line in reversed(out.splitlines()) if line.startswith("=")), "")
        print(f"  {'ok  ' if code == 0 else 'FAIL'} {name:26s} {elapsed / 60:5.1f} min  {summary}")
    return 0 if all(code == 0 for _, code, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
