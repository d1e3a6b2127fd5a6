#!/bin/sh
# polyak under gymnasium 0.29.1, the oldest Gymnasium it supports (the RL4AA'26 challenge environment's pin):
# a virtual environment of its own (.venv-gym029/, git-ignored) with polyak, gymnasium==0.29.1, the NumPy and
# SciPy verified with it, and pytest; then the tests marked `gym029` (API, episode boundaries, CLI, the host vs
# jitted loop row by row, one learning smoke test). NumPy stays 2.x: JAX 0.10.2 and Minari 0.5.4 require
# NumPy >= 2, and gymnasium 0.29.1 runs on it (only its Acrobot uses an alias NumPy 2 removed; polyak never
# makes Acrobot). Run from anywhere: `sh ci/gym029.sh`. GYM029_VENV=DIR puts the environment elsewhere.
set -eu
cd "$(dirname "$0")/.."
venv="${GYM029_VENV:-.venv-gym029}"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -e . "gymnasium==0.29.1" "numpy==2.4.6" "scipy==1.17.1" "pytest>=8.3,<10"
"$venv/bin/python" -c 'import gymnasium, numpy, scipy, jax; print("gymnasium", gymnasium.__version__, "numpy",
numpy.__version__, "scipy", scipy.__version__, "jax", jax.__version__)'
# The files are listed (not the whole tests/ folder): collecting every file would import the test extra's
# packages (torch, Cheetah, Ray, gymnax), which this environment leaves out.
exec "$venv/bin/python" -m pytest -p no:cacheprovider -m gym029 \
    tests/envs/test_gym_versions.py tests/envs/test_boundaries.py tests/test_bad_input.py \
    tests/algos/offpolicy/test_offpolicy_api.py tests/test_cli.py tests/algos/test_jitted.py \
    tests/algos/offpolicy/test_dqn.py
