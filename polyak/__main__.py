"""`python -m polyak [--cpus 0,1] COMMAND ...`: the command line; `--cpus` pins the process first.

Local sweep and seed workers start as `python -m polyak --cpus 0,1 train ...`: the CPU set is applied
before JAX creates its backend, so XLA sizes its thread pool to it.
"""

import os
import sys

argv = sys.argv[1:]
if argv[:1] == ["--cpus"]:
    cpus, argv = argv[1], argv[2:]
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    sys.argv = ["polyak", *argv]  # config.json records the command as `polyak train ...`

from polyak.cli import main  # noqa: E402

sys.exit(main(argv))
