import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The repository root, so that tests import their helpers as `tests.fake_envs` and the benchmark scripts as
# `benchmarks.*` however pytest is started (the test folders mirror the package and have no __init__.py).
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
