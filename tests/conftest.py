import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA's persistent compilation cache, for this test session only (ci/run_tests.py gives all its pytest
# processes one). Most of the suite's time is compiling, and many tests build a fresh agent whose jitted
# functions lower to programs compiled before: JAX recompiles those for every new function object, the cache
# hands back the executable built from the identical program (same compiler output, same numbers). The
# variables also reach the CLI subprocesses the tests start.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="polyak-tests-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The repository root, so that tests import their helpers as `tests.fake_envs` and the benchmark scripts as
# `benchmarks.*` however pytest is started (the test folders mirror the package and have no __init__.py).
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
