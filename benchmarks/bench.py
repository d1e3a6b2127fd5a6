"""Training-speed benchmark: polyak against Stable-Baselines3 and SBX, in the same run.

Run it as ``python -m benchmarks.bench`` or ``polyak bench`` (``--help`` lists the options).

What is measured
----------------
For each algorithm (SAC, TD3; PPO, A2C with ``--algos``) and each library (polyak,
Stable-Baselines3 on PyTorch/CPU, SBX on JAX), one training run on Gymnasium ``Pendulum-v1``
with one env and the same hyperparameters (:class:`BenchConfig`; for PPO and A2C SB3's
defaults, :class:`PPOBenchConfig`, :class:`A2CBenchConfig`). Every run happens in its own
fresh Python subprocess, one after the other, so that runs never compete for cores and no JIT
cache or thread pool carries over. On-policy runs are rounded up to whole rollouts
(:func:`run_steps`) so that every library makes the same updates; SBX has no A2C.

* **steps/s** — environment steps of ``model.learn(steps)`` divided by its wall time. This is
  what a user sees: it includes JIT compilation (polyak, SBX) and the ``learning_starts``
  warm-up phase of random actions without gradient steps. Building the model is not included
  (its time is kept in the JSON output as ``construct_s``).
* **steady steps/s** — steps/s over the second half of the same run, from the moment the
  step counter reaches ``steps // 2`` to the end of ``learn``: compilation and warm-up are
  over, every step is one environment step plus one gradient step (on-policy: from the first
  step after the update at half the run, :func:`halfway_step`).

With ``--repeats R`` each (library, algorithm) pair runs R times (interleaved, so that slow
drifts of a noisy machine hit every library alike) and the tables show medians.

Then, unless ``--no-flops``, a separate subprocess relates polyak's SAC update to the
machine's arithmetic rate:

1. the machine's f32 matmul rate, from a jitted ``(n, n) @ (n, n)`` matmul, n = 256 and 1024;
2. the FLOPs of one SAC gradient step (batch 256), from XLA's cost analysis of the compiled
   pure update function ``agent.update(state, batch, key)``;
3. the rate of that update alone, jitted with the state donated and run in a loop.

It reports the update's GFLOP/s as a fraction of the 256-matmul rate (the size of the
networks' hidden layers), and the fraction implied end to end by the measured steps/s
(one gradient step per environment step). Micro-benchmarks report the best of several
timed rounds, the usual way to filter out interference.

Each run also records how many cores *other* processes kept busy meanwhile (machine CPU time
from /proc/stat minus the benchmark's own); runs above 0.25 cores are flagged in the output, as
other load can distort the numbers badly (PyTorch's spinning worker threads, for one, can make
SB3 tens of times slower on an oversubscribed 2-core machine).

The host gap: ``--libs polyak,polyak-overlap,...`` adds polyak with ``act_before_update=True`` (each
action chosen before the step's gradient update, which then runs while the env steps), with the ratios
polyak overlap / peer and polyak overlap / polyak. ``--env HalfCheetah-v5`` (any Gymnasium id) runs
every library on another env with the same hyperparameters.

Comparing with an earlier polyak
--------------------------------
``--baseline-tree PATH`` (a source checkout of an earlier polyak, e.g. a ``git worktree``) adds the
library ``polyak@base``: the same runs, made by that tree's own benchmark worker
(:func:`baseline_worker_command`: ``python -m benchmarks.bench --worker polyak:ALGO``, or
``python -m polyak.bench`` in trees from before the benchmarks moved out of the package, with the
tree as working directory and first on ``PYTHONPATH``), so that ``import polyak`` there is the
tree's polyak. Its runs are interleaved with the others in every repeat, the tables add the
same-run ratio polyak/polyak@base, and the notes and ``--out`` record the tree's git commit. The
baseline builds its models with its own version of this file (its hyperparameters).

``--out FILE`` writes every raw number (each run, each repeat, the machine and versions) as JSON.
Workers are ``python -m benchmarks.bench --worker LIB:ALGO`` (or ``--worker flops``) and report one
JSON line on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_ID = "Pendulum-v1"
OFF_POLICY = ("sac", "td3")
ON_POLICY = ("ppo", "a2c")
ALGOS = OFF_POLICY + ON_POLICY
DEFAULT_ALGOS = OFF_POLICY
LIBS = ("polyak", "polyak-overlap", "sb3", "sbx")
DEFAULT_LIBS = ("polyak", "sb3", "sbx")
OURS = ("polyak", "polyak-overlap")  # the libraries ratios are taken of
BASELINE = "polyak@base"  # the library name of --baseline-tree's polyak (measured by that tree's own worker)
LIB_LABELS = {"polyak": "polyak", "polyak-overlap": "polyak overlap", BASELINE: BASELINE, "sb3": "SB3", "sbx": "SBX"}
LIB_MODULES = {"polyak": "polyak", "polyak-overlap": "polyak", "sb3": "stable_baselines3", "sbx": "sbx"}
UNSUPPORTED = {("sbx", "a2c"): "SBX has no A2C",  # (library, algorithm) pairs that are not run
               ("polyak-overlap", "ppo"): "act_before_update is an off-policy option",
               ("polyak-overlap", "a2c"): "act_before_update is an off-policy option"}
VERSION_PACKAGES = ("polyak", "stable-baselines3", "sbx-rl", "jax", "jaxlib", "flax", "optax", "torch",
                    "gymnasium", "numpy")
MATMUL_SIZES = (256, 1024)
RESULT_MARKER = "@@polyak-bench-result "  # prefixes the one stdout line a worker subprocess reports on
BUSY_CORES = 0.25  # other processes using more cores than this on average during a run make it unreliable
REPO_ROOT = Path(__file__).resolve().parents[1]  # the source checkout these benchmarks (and `polyak`) come from


@dataclass(frozen=True)
class BenchConfig:
    """Hyperparameters given explicitly, and identically, to all three libraries."""

    learning_rate: float = 1e-3
    buffer_size: int = 1_000_000
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    learning_starts: int = 1000
    train_freq: int = 1
    gradient_steps: int = 1
    net_arch: tuple[int, ...] = (256, 256)  # actor and each critic
    n_critics: int = 2
    ent_coef: str = "auto"  # SAC: learned temperature, initial value 1.0 in all three libraries
    policy_delay: int = 2  # TD3
    target_policy_noise: float = 0.2  # TD3
    target_noise_clip: float = 0.5  # TD3
    exploration_sigma: float = 0.1  # TD3: Gaussian exploration noise in the [-1, 1] action space
    env_id: str = ENV_ID  # the Gymnasium env every library trains on (--env)

    def describe(self) -> str:
        return describe(self)


def describe(cfg: Any) -> str:
    """'name=value, ...' of a hyperparameter dataclass (tuples shown as lists)."""
    return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in dataclasses.asdict(cfg).items())


@dataclass(frozen=True)
class PPOBenchConfig:
    """Stable-Baselines3's PPO defaults, given explicitly, and identically, to all three libraries."""

    learning_rate: float = 3e-4
    n_steps: int = 2048  # rollout length (one env)
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    normalize_advantage: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 64)  # separate policy and value networks, tanh
    ortho_init: bool = True  # Adam eps 1e-5 in all three libraries (SB3's and SBX's default, polyak's fixed value)


@dataclass(frozen=True)
class A2CBenchConfig:
    """Stable-Baselines3's A2C defaults (RMSprop, decay 0.99, eps 1e-5), given explicitly to polyak and SB3."""

    learning_rate: float = 7e-4
    n_steps: int = 5
    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantage: bool = False
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 64)
    ortho_init: bool = True


ON_POLICY_CONFIGS: dict[str, Any] = {"ppo": PPOBenchConfig(), "a2c": A2CBenchConfig()}


def run_steps(algo: str, steps: int) -> int:
    """Environment steps actually run: on-policy runs are rounded up to whole rollouts, so that every
    library collects the same rollouts and makes the same number of updates (SB3's learn(N) finishes
    the rollout it is in, polyak's stops at N)."""
    if algo not in ON_POLICY:
        return steps
    n = ON_POLICY_CONFIGS[algo].n_steps
    return -(-steps // n) * n


def halfway_step(algo: str, steps: int) -> int:
    """Where the 'steady' window starts. On-policy: the first step after the update at half the run
    (SB3 updates after a rollout's last step, polyak within it), so both windows hold the same updates."""
    if algo not in ON_POLICY:
        return max(1, steps // 2)
    n = ON_POLICY_CONFIGS[algo].n_steps
    return (steps // n) // 2 * n + 1


def _on_policy_kwargs(algo: str, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword arguments, policy_kwargs without activation_fn) shared by all libraries."""
    fields = dataclasses.asdict(ON_POLICY_CONFIGS[algo])
    net = dict(net_arch=list(fields.pop("net_arch")), ortho_init=fields.pop("ortho_init"))
    return dict(seed=seed, verbose=0, **fields), net


# --------------------------------------------------------------------------------------------
# Model construction, one function per library (imports stay inside: only workers import them)
# --------------------------------------------------------------------------------------------

def _common_kwargs(cfg: BenchConfig, seed: int) -> dict[str, Any]:
    return dict(seed=seed, learning_rate=cfg.learning_rate, buffer_size=cfg.buffer_size,
                batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma, learning_starts=cfg.learning_starts,
                train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps, verbose=0)


def _env(cfg: BenchConfig | None) -> str:
    return ENV_ID if cfg is None else cfg.env_id


def build_polyak(algo: str, cfg: BenchConfig, seed: int, act_before_update: bool = False) -> Any:
    """polyak's model; `act_before_update` (library 'polyak-overlap'): actions chosen before each update,
    so the env steps while the update runs (the acting policy one update behind SB3's order)."""
    import polyak

    env_id = _env(cfg)  # Pendulum-v1 unless --env
    if algo in ON_POLICY:  # no observation normaliser (SB3 and SBX have none); A2C: RMSprop as SB3
        kwargs, net = _on_policy_kwargs(algo, seed)
        return polyak.ALGORITHMS[algo]("MlpPolicy", env_id, normalize_obs=False,
                                       optimizer="rmsprop" if algo == "a2c" else "adam",
                                       policy_kwargs=dict(net, activation_fn="tanh"), **kwargs)
    kwargs = _common_kwargs(cfg, seed)
    kwargs["policy_kwargs"] = dict(net_arch=list(cfg.net_arch), n_critics=cfg.n_critics)
    kwargs["act_before_update"] = act_before_update
    if algo == "sac":
        return polyak.SAC("MlpPolicy", env_id, ent_coef=cfg.ent_coef, target_update_interval=1, **kwargs)
    return polyak.TD3("MlpPolicy", env_id, policy_delay=cfg.policy_delay,
                      target_policy_noise=cfg.target_policy_noise, target_noise_clip=cfg.target_noise_clip,
                      action_noise=polyak.NormalActionNoise(0.0, cfg.exploration_sigma), **kwargs)


def _sb3_normal_noise(sigma: float, env_id: str) -> Any:
    """SB3's NormalActionNoise(zeros(n), sigma * ones(n)) for the env's n action dimensions."""
    import gymnasium
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise

    env = gymnasium.make(env_id)
    n = int(np.prod(env.action_space.shape or (1,)))
    env.close()
    return NormalActionNoise(np.zeros(n), sigma * np.ones(n))


def build_sb3(algo: str, cfg: BenchConfig, seed: int) -> Any:
    import stable_baselines3

    env_id = _env(cfg)

    if algo in ON_POLICY:
        import torch

        kwargs, net = _on_policy_kwargs(algo, seed)
        if algo == "a2c":
            kwargs.update(use_rms_prop=True, rms_prop_eps=1e-5)
        return getattr(stable_baselines3, algo.upper())("MlpPolicy", env_id, device="cpu",
                                                        policy_kwargs=dict(net, activation_fn=torch.nn.Tanh), **kwargs)
    kwargs = _common_kwargs(cfg, seed)
    kwargs["policy_kwargs"] = dict(net_arch=list(cfg.net_arch), n_critics=cfg.n_critics)
    if algo == "sac":
        return stable_baselines3.SAC("MlpPolicy", env_id, ent_coef=cfg.ent_coef, target_update_interval=1,
                                     device="cpu", **kwargs)
    return stable_baselines3.TD3("MlpPolicy", env_id, policy_delay=cfg.policy_delay,
                                 target_policy_noise=cfg.target_policy_noise, target_noise_clip=cfg.target_noise_clip,
                                 action_noise=_sb3_normal_noise(cfg.exploration_sigma, cfg.env_id), device="cpu", **kwargs)


def build_sbx(algo: str, cfg: BenchConfig, seed: int) -> Any:
    import sbx

    env_id = _env(cfg)

    if algo in ON_POLICY:  # PPO only (UNSUPPORTED); SBX's ortho_init covers the policy's output layer only
        import flax.linen

        kwargs, net = _on_policy_kwargs(algo, seed)
        return sbx.PPO("MlpPolicy", env_id, policy_kwargs=dict(net, activation_fn=flax.linen.tanh), **kwargs)
    # SBX takes a separate critic learning rate (default: learning_rate) and, for SAC, a
    # policy_delay (default 1); both are set explicitly so that a change of default cannot skew the run.
    kwargs = _common_kwargs(cfg, seed)
    kwargs["policy_kwargs"] = dict(net_arch=list(cfg.net_arch), n_critics=cfg.n_critics)
    kwargs["qf_learning_rate"] = cfg.learning_rate
    if algo == "sac":
        return sbx.SAC("MlpPolicy", env_id, ent_coef=cfg.ent_coef, policy_delay=1, **kwargs)
    return sbx.TD3("MlpPolicy", env_id, policy_delay=cfg.policy_delay,
                   target_policy_noise=cfg.target_policy_noise, target_noise_clip=cfg.target_noise_clip,
                   action_noise=_sb3_normal_noise(cfg.exploration_sigma, cfg.env_id), **kwargs)


BUILDERS: dict[str, Callable[[str, BenchConfig, int], Any]] = {
    "polyak": build_polyak, "polyak-overlap": functools.partial(build_polyak, act_before_update=True),
    "sb3": build_sb3, "sbx": build_sbx}


# --------------------------------------------------------------------------------------------
# Worker side: what runs inside the subprocesses
# --------------------------------------------------------------------------------------------

@dataclass
class HalfwayMark:
    """Remembers when the environment step counter first reached `at_step`."""

    at_step: int
    time: float | None = None
    step: int | None = None

    def observe(self, num_timesteps: int) -> None:
        if self.time is None and num_timesteps >= self.at_step:
            self.time, self.step = time.perf_counter(), num_timesteps


def _learn_callback(lib: str, mark: HalfwayMark) -> Any:
    """A per-step callback in the library's own form that feeds `mark`."""
    if lib in OURS:
        return lambda model: mark.observe(model.num_timesteps)  # called after every env step

    from stable_baselines3.common.callbacks import BaseCallback

    class HalfwayCallback(BaseCallback):
        def _on_step(self) -> bool:
            mark.observe(self.num_timesteps)
            return True

    return HalfwayCallback()


def run_training(lib: str, algo: str, steps: int, seed: int, cfg: BenchConfig) -> dict[str, Any]:
    """Build one model, time `learn(steps)`, return the raw numbers."""
    t0 = time.perf_counter()
    model = BUILDERS[lib](algo, cfg, seed)
    construct_s = time.perf_counter() - t0
    steps = run_steps(algo, steps)
    mark = HalfwayMark(at_step=halfway_step(algo, steps))
    callback = _learn_callback(lib, mark)
    t0 = time.perf_counter()
    model.learn(steps, callback=callback)
    t1 = time.perf_counter()
    learn_s = t1 - t0
    done = int(model.num_timesteps)
    steady = None
    if mark.time is not None and mark.step is not None and t1 > mark.time and done > mark.step:
        steady = (done - mark.step) / (t1 - mark.time)
    out = {"lib": lib, "algo": algo, "status": "ok", "steps": done, "seed": seed,
           "construct_s": construct_s, "learn_s": learn_s, "steps_per_s": done / learn_s,
           "halfway_step": mark.step, "halfway_s": None if mark.time is None else mark.time - t0,
           "steady_steps_per_s": steady}
    if lib in OURS:
        out["polyak_file"] = sys.modules["polyak"].__file__  # which polyak ran (see --baseline-tree)
    return out


def _best_rate(fn: Callable[[], Any], block: Callable[[Any], Any], round_s: float = 0.25, rounds: int = 5) -> float:
    """Calls per second of `fn`: best of `rounds` timed rounds of at least `round_s` seconds each."""
    block(fn())  # compile / warm up
    t0, calls = time.perf_counter(), 0
    while True:  # calibrate the number of calls per round
        out = fn()
        calls += 1
        if calls >= 3 and time.perf_counter() - t0 >= round_s / 4:
            block(out)
            break
    per_round = max(3, int(calls * round_s / max(time.perf_counter() - t0, 1e-9)))
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            out = fn()
        block(out)
        best = max(best, per_round / (time.perf_counter() - t0))
    return best


def _matmul_gflops(n: int, rng: Any) -> float:
    """GFLOP/s of a jitted f32 (n, n) @ (n, n) matmul (2 n^3 FLOPs per call)."""
    import jax
    import jax.numpy as jnp

    matmul = jax.jit(jnp.matmul)
    a, b = (jnp.asarray(rng.standard_normal((n, n)), jnp.float32) for _ in range(2))
    return _best_rate(lambda: matmul(a, b), jax.block_until_ready) * 2 * n**3 / 1e9


def _xla_cost(compiled: Any) -> dict[str, float]:
    """XLA's cost analysis of a compiled JAX function, as one dict ('flops', 'bytes accessed', ...)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # some JAX versions return one dict per program
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        raise RuntimeError(f"XLA cost analysis gave no FLOP count: {cost!r}")
    return {k: float(v) for k, v in cost.items() if isinstance(v, (int, float))}


def measure_flops(cfg: BenchConfig, seed: int) -> dict[str, Any]:
    """Matmul rate of the machine and FLOPs / rate of polyak's SAC gradient step (see module doc)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from polyak.core.types import Transition

    rng = np.random.default_rng(seed)
    matmul_gflops = {str(n): _matmul_gflops(n, rng) for n in MATMUL_SIZES}

    model = build_polyak("sac", cfg, seed)
    agent = model.agent
    bs, obs_dim, act_dim = cfg.batch_size, agent.obs_dim, agent.act_dim
    batch = Transition(
        obs=jnp.asarray(rng.standard_normal((bs, obs_dim)), jnp.float32),
        action=jnp.asarray(rng.uniform(-1.0, 1.0, (bs, act_dim)), jnp.float32),
        reward=jnp.asarray(rng.standard_normal(bs), jnp.float32),
        next_obs=jnp.asarray(rng.standard_normal((bs, obs_dim)), jnp.float32),
        terminated=jnp.zeros(bs, jnp.float32))
    key = jax.random.PRNGKey(seed)
    cost = _xla_cost(jax.jit(agent.update).lower(model.learner.agent, batch, key).compile())
    flops = cost["flops"]

    update = jax.jit(agent.update, donate_argnums=0)
    state = jax.tree.map(jnp.array, model.learner.agent)  # a private copy: it is donated on every call

    def one_update() -> Any:
        nonlocal state
        state = update(state, batch, key)[0]  # (state, metrics, info)
        return state

    updates_per_s = _best_rate(one_update, jax.block_until_ready)
    gflops = updates_per_s * flops / 1e9
    return {"status": "ok", "jax_backend": jax.default_backend(), "matmul_gflops": matmul_gflops,
            "sac_update_flops": flops, "sac_update_bytes_accessed": float(cost.get("bytes accessed", float("nan"))),
            "sac_updates_per_s": updates_per_s, "sac_update_gflops": gflops,
            "sac_update_fraction_of_matmul256": gflops / matmul_gflops["256"], **measure_sbx_update(cfg, seed)}


def measure_sbx_update(cfg: BenchConfig, seed: int) -> dict[str, Any]:
    """SBX's SAC gradient step alone (its jitted `_train` with one gradient step on a fixed batch), updates/s
    and XLA's FLOP count: the rate SBX's end-to-end steps/s is bounded by. Empty when SBX is missing."""
    if importlib.util.find_spec("sbx") is None:
        return {}
    import jax
    import numpy as np

    model = build_sbx("sac", cfg, seed)
    model._setup_learn(cfg.batch_size)  # noqa: SLF001  (the replay buffer and logger, as learn() makes them)
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = model.observation_space.shape[0], model.action_space.shape[0]
    from sbx.common.type_aliases import ReplayBufferSamplesNp

    bs = cfg.batch_size
    batch = ReplayBufferSamplesNp(rng.standard_normal((bs, obs_dim)).astype(np.float32),
                                  rng.uniform(-1, 1, (bs, act_dim)).astype(np.float32),
                                  rng.standard_normal((bs, obs_dim)).astype(np.float32),
                                  np.zeros(bs, np.float32), rng.standard_normal(bs).astype(np.float32),
                                  np.full(bs, cfg.gamma, np.float32))
    policy = model.policy
    state = {"qf": policy.qf_state, "actor": policy.actor_state, "ent": model.ent_coef_state, "key": model.key}
    args = lambda: (model.tau, model.target_entropy, 1, batch, model.policy_delay, 0,  # noqa: E731
                    state["qf"], state["actor"], state["ent"], state["key"])
    train = model._train  # noqa: SLF001  (a classmethod over a jitted function)
    jitted = getattr(train, "__func__", train)
    flops = _xla_cost(jitted.lower(type(model), *args()).compile()).get("flops", float("nan"))

    def one_update() -> Any:
        state["qf"], state["actor"], state["ent"], state["key"], _ = train(*args())
        return state["qf"]

    rate = _best_rate(one_update, jax.block_until_ready)
    return {"sbx_sac_updates_per_s": rate, "sbx_sac_update_flops": flops}


def _worker(task: str, steps: int, seed: int, cfg: BenchConfig) -> int:
    """Run one task ('flops' or 'LIB:ALGO') and print its result on one marked stdout line."""
    if task == "flops":
        result = measure_flops(cfg, seed)
    else:
        lib, algo = task.split(":")
        try:
            __import__(LIB_MODULES[lib])
        except ImportError as exc:
            result = {"lib": lib, "algo": algo, "status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}
        else:
            result = run_training(lib, algo, steps, seed, cfg)
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Parent side: scheduling, machine description, summary and tables
# --------------------------------------------------------------------------------------------

def _machine_cpu_seconds() -> float | None:
    """CPU time used so far by all processes of the machine (Linux /proc/stat), None where unavailable."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _own_cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass(frozen=True)
class WorkerCommand:
    """A worker subprocess: its command line, working directory and environment (None: this process's)."""

    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] | None = None


def baseline_module(tree: str | os.PathLike[str], name: str = "bench") -> str:
    """The module of benchmark `name` ('bench' or 'bench_jax') in the polyak source checkout `tree`:
    'benchmarks.NAME' (benchmarks/NAME.py, the layout since the package's reorganisation) or
    'polyak.NAME' (polyak/NAME.py, before it, when the benchmarks were part of the package)."""
    root = Path(tree)
    for module in (f"benchmarks.{name}", f"polyak.{name}"):
        if root.joinpath(*module.split(".")).with_suffix(".py").is_file():
            return module
    raise SystemExit(f"--baseline-tree {root}: has neither benchmarks/{name}.py nor polyak/{name}.py; "
                     "expected a source checkout of polyak")


def baseline_worker_command(tree: str | os.PathLike[str], task: str, worker_args: Sequence[str],
                            name: str = "bench", environ: dict[str, str] | None = None) -> WorkerCommand:
    """The worker command that measures `task` with the polyak of the source checkout `tree`: that tree's
    own benchmark module (:func:`baseline_module`) run as ``python -m MODULE --worker TASK WORKER_ARGS``
    by this interpreter, with the tree as working directory and prepended to PYTHONPATH, so that
    ``import polyak`` (and ``benchmarks``) resolve to the tree. A task of library polyak@base
    ('polyak@base:sac') becomes the tree's 'polyak:sac'. `environ` defaults to os.environ."""
    root = Path(tree).resolve()
    module = baseline_module(root, name)
    lib, sep, rest = task.partition(":")
    if lib == BASELINE:
        task = "polyak" + sep + rest
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return WorkerCommand([sys.executable, "-m", module, "--worker", task, *worker_args], cwd=str(root), env=env)


def git_source(tree: str | os.PathLike[str]) -> dict[str, Any]:
    """{'tree', 'commit' (git rev-parse --short HEAD, None outside git), 'dirty' (uncommitted changes to
    tracked files, None outside git)} of a source checkout."""
    def git(*argv: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(tree), *argv], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"tree": str(tree), "commit": commit, "dirty": None if status is None else bool(status)}


def describe_source(source: dict[str, Any]) -> str:
    """'PATH (commit abc1234, uncommitted changes)' for a git_source() record."""
    extra = [f"commit {source['commit']}" if source.get("commit") else "no git commit"]
    if source.get("dirty"):
        extra.append("uncommitted changes")
    return f"{source['tree']} ({', '.join(extra)})"


def baseline_source(tree: str | os.PathLike[str], name: str = "bench") -> dict[str, Any]:
    """git_source() of --baseline-tree, plus the worker module and where `import polyak` resolves in the
    baseline worker's environment (checked to lie inside the tree: otherwise the comparison would be void)."""
    root = Path(tree).resolve()
    if not root.is_dir():
        raise SystemExit(f"--baseline-tree {tree}: not a directory")
    cmd = baseline_worker_command(root, "polyak:none", [], name)
    probe = "import importlib.util as u; s = u.find_spec('polyak'); print(s.origin if s else '')"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cmd.cwd, env=cmd.env)
    origin = proc.stdout.strip()
    if proc.returncode != 0 or not origin or not Path(origin).resolve().is_relative_to(root):
        raise SystemExit(f"--baseline-tree {tree}: `import polyak` there resolves to {origin or 'nothing'!r}, "
                         f"not to the tree's polyak package{': ' + proc.stderr.strip() if proc.returncode else ''}")
    return {**git_source(root), "module": baseline_module(root, name), "polyak_file": origin}


def with_baseline(libs: Sequence[str]) -> list[str]:
    """`libs` with polyak@base added, right after polyak (so that each repeat runs the two back to back)."""
    out = [lib for lib in libs if lib != BASELINE]
    out.insert(out.index("polyak") + 1 if "polyak" in out else len(out), BASELINE)
    return out


def worker_command(task: str, steps: int, seed: int, cfg: BenchConfig,
                   baseline_tree: str | os.PathLike[str] | None = None) -> WorkerCommand:
    """The worker command of `task` ('flops' or 'LIB:ALGO'); tasks of polyak@base run from `baseline_tree`."""
    worker_args = ["--steps", str(steps), "--seed", str(seed), "--buffer-size", str(cfg.buffer_size)]
    if cfg.env_id != ENV_ID:
        worker_args += ["--env", cfg.env_id]
    if task.split(":")[0] == BASELINE:
        if baseline_tree is None:
            raise ValueError(f"task {task!r} needs a baseline tree")
        return baseline_worker_command(baseline_tree, task, worker_args, "bench")
    return WorkerCommand([sys.executable, "-m", "benchmarks.bench", "--worker", task, *worker_args])


def _spawn(task: str, steps: int, seed: int, cfg: BenchConfig,
           baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one worker in a fresh interpreter and return its result (or an error record).

    Also records `other_load_cores`: the average number of cores that *other* processes kept busy
    meanwhile (machine CPU time minus ours, over the wall time), to flag runs disturbed by other load.
    A polyak@base task runs from the baseline tree (`baseline`: :func:`baseline_source`); its result
    gets the tree and, where its worker does not report it, the polyak file found there beforehand.
    """
    result = run_worker(worker_command(task, steps, seed, cfg, None if baseline is None else baseline["tree"]))
    if task.split(":")[0] == BASELINE and baseline is not None:
        result["source_tree"] = baseline["tree"]
        result.setdefault("polyak_file", baseline["polyak_file"])
    return result


def run_worker(cmd: Sequence[str] | WorkerCommand) -> dict[str, Any]:
    """Run a benchmark worker command in a fresh interpreter and parse its result line; also record
    `other_load_cores`, the cores other processes kept busy meanwhile (used by bench_jax too)."""
    if not isinstance(cmd, WorkerCommand):
        cmd = WorkerCommand(list(cmd))
    machine0, own0, t0 = _machine_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd.argv, capture_output=True, text=True, cwd=cmd.cwd, env=cmd.env)
    machine1, own1, wall = _machine_cpu_seconds(), _own_cpu_seconds(), time.perf_counter() - t0
    other = None
    if machine0 is not None and machine1 is not None:
        other = max(0.0, (machine1 - machine0 - (own1 - own0)) / wall)
    result: dict[str, Any] | None = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
            break
    if result is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        result = {"status": "error", "error": f"worker exited with code {proc.returncode}:\n{tail}"}
    result.update(process_s=wall, other_load_cores=other)
    return result


def _disturbed(result: dict[str, Any]) -> bool:
    other = result.get("other_load_cores")
    return other is not None and other > BUSY_CORES


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": usable,
            "os": platform.platform(), "python": platform.python_version()}


def library_versions(packages: tuple[str, ...] = VERSION_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


SUMMARY_KEYS = ("steps_per_s", "steady_steps_per_s", "learn_s")


def summarize(runs: list[dict[str, Any]], algos: Sequence[str], libs: Sequence[str]) -> dict[str, Any]:
    """Over the repeats of each (algo, lib): summary[algo][lib] = {KEY: median, KEY_min, KEY_max, n}."""
    summary: dict[str, Any] = {}
    for algo in algos:
        summary[algo] = {}
        for lib in libs:
            ok = [r for r in runs if r.get("algo") == algo and r.get("lib") == lib and r.get("status") == "ok"]
            if not ok:
                continue
            entry: dict[str, Any] = {"n": len(ok)}
            for key in SUMMARY_KEYS:
                values = [r[key] for r in ok if r[key] is not None]
                entry[key] = _median(values)
                entry[key + "_min"] = min(values, default=None)
                entry[key + "_max"] = max(values, default=None)
            summary[algo][lib] = entry
    return summary


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _fmt_spread(entry: dict[str, Any] | None, key: str) -> str:
    """The median, followed by (min-max) when there were several repeats."""
    if entry is None or entry.get(key) is None:
        return "—"
    text = _fmt(entry[key])
    if entry["n"] > 1:
        text += f" ({_fmt(entry[key + '_min'])}-{_fmt(entry[key + '_max'])})"
    return text


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool,
                 right: Sequence[bool] | None = None) -> str:
    right = right or [False] * len(header)
    if markdown:
        sep = ["---:" if r else "---" for r in right]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, sep, *rows])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def ratio_pairs(libs: Sequence[str]) -> list[tuple[str, str]]:
    """(numerator, denominator) libraries of the ratio columns: each of polyak's variants over each peer,
    then polyak overlap over polyak."""
    ours = [lib for lib in OURS if lib in libs]
    pairs = [(a, b) for a in ours for b in libs if b not in OURS]
    return pairs + ([("polyak-overlap", "polyak")] if len(ours) == 2 else [])


def speed_table(summary: dict[str, Any], algos: Sequence[str], libs: Sequence[str], markdown: bool) -> str:
    pairs = ratio_pairs(libs)
    header = ["algo", "measure", *(LIB_LABELS[lib] + " steps/s" for lib in libs)]
    header += [f"{LIB_LABELS[a]}/{LIB_LABELS[b]}" for a, b in pairs]
    rows = []
    for algo in algos:
        for key, label in (("steps_per_s", "whole run"), ("steady_steps_per_s", "steady (2nd half)")):
            values = {lib: summary[algo].get(lib, {}).get(key) for lib in libs}
            row = [algo.upper(), label, *(_fmt_spread(summary[algo].get(lib), key) for lib in libs)]
            row += [_ratio(values[a], values[b]) for a, b in pairs]
            rows.append(row)
    return render_table(header, rows, markdown, right=[False, False] + [True] * (len(header) - 2))


def repeat_ratio_table(runs: list[dict[str, Any]], algos: Sequence[str], libs: Sequence[str],
                       markdown: bool) -> str | None:
    """polyak's whole-run steps/s over each peer's, repeat by repeat (runs of a repeat are back to back)."""
    cols = [(algo, a, b) for algo in algos for a, b in ratio_pairs(libs)
            if (a, algo) not in UNSUPPORTED and (b, algo) not in UNSUPPORTED]
    if not cols:
        return None
    rate = {(r["repeat"], r["algo"], r["lib"]): r["steps_per_s"] for r in runs if r["status"] == "ok"}
    repeats = sorted({r["repeat"] for r in runs})
    rows = [[str(rep + 1), *(_ratio(rate.get((rep, algo, a)), rate.get((rep, algo, b))) for algo, a, b in cols)]
            for rep in repeats]
    header = ["repeat", *(f"{algo.upper()} {LIB_LABELS[a]}/{LIB_LABELS[b]}" for algo, a, b in cols)]
    return render_table(header, rows, markdown, right=[False] + [True] * len(cols))


def flops_section(flops: dict[str, Any], summary: dict[str, Any], markdown: bool) -> tuple[str, dict[str, Any]]:
    """The FLOP-rate table, and the end-to-end fractions it derives (for the JSON)."""
    mm256 = flops["matmul_gflops"]["256"]
    per_step = flops["sac_update_flops"]
    rows = [[f"f32 matmul {n}x{n} @ {n}x{n} (jitted)", f"{g:.1f} GFLOP/s", "—"]
            for n, g in flops["matmul_gflops"].items()]
    rows.append(["polyak SAC gradient step (XLA cost analysis)", f"{per_step / 1e6:.1f} MFLOP", "—"])
    rows.append([f"polyak SAC update alone: {flops['sac_updates_per_s']:,.0f} updates/s",
                 f"{flops['sac_update_gflops']:.1f} GFLOP/s",
                 f"{100 * flops['sac_update_fraction_of_matmul256']:.1f}%"])
    if "sbx_sac_updates_per_s" in flops:
        sbx_gflops = flops["sbx_sac_updates_per_s"] * flops["sbx_sac_update_flops"] / 1e9
        rows.append(["SBX SAC gradient step (XLA cost analysis)", f"{flops['sbx_sac_update_flops'] / 1e6:.1f} MFLOP", "—"])
        rows.append([f"SBX SAC update alone: {flops['sbx_sac_updates_per_s']:,.0f} updates/s",
                     f"{sbx_gflops:.1f} GFLOP/s", f"{100 * sbx_gflops / mm256:.1f}%"])
    derived: dict[str, Any] = {}
    for lib in OURS:
        sac = summary.get("sac", {}).get(lib)
        if sac is None:
            continue
        for key, label in (("steps_per_s", "whole run"), ("steady_steps_per_s", "steady")):
            rate = sac.get(key)
            if rate is None:
                continue
            gflops = rate * per_step / 1e9
            derived[key if lib == "polyak" else f"{lib}:{key}"] = {"gflops": gflops,
                                                                   "fraction_of_matmul256": gflops / mm256}
            rows.append([f"{LIB_LABELS[lib]} SAC end to end, {label}: {rate:,.0f} steps/s x 1 gradient step",
                         f"{gflops:.1f} GFLOP/s", f"{100 * gflops / mm256:.1f}%"])
    table = render_table(["quantity", "value", "of 256-matmul rate"], rows, markdown, right=[False, True, True])
    return table, derived


def baseline_note(baseline: dict[str, Any], polyak_source: dict[str, Any] | None, task: str) -> str:
    """The note on what polyak@base is (shared with bench_jax; `task` is its worker's task, e.g. 'polyak:ALGO')."""
    return (f"{BASELINE} = the polyak of {describe_source(baseline)}, measured by that tree's own worker "
            f"(python -m {baseline['module']} --worker {task}, working directory and first PYTHONPATH entry = the "
            f"tree; polyak imported from {baseline['polyak_file']}), with that version's benchmark settings; "
            "polyak = " + (describe_source(polyak_source) if polyak_source else "this checkout")
            + f". Its runs are interleaved with the others in every repeat; polyak/{BASELINE} > 1 means this "
            "checkout is faster.")


def notes(cfg: BenchConfig, steps: int, repeats: int, algos: Sequence[str], libs: Sequence[str],
          baseline: dict[str, Any] | None = None, polyak_source: dict[str, Any] | None = None) -> list[str]:
    """What the reader needs to interpret the numbers, limited to the libraries and algorithms run."""
    off = [a for a in algos if a in OFF_POLICY]
    out = []
    if baseline is not None and BASELINE in libs:
        out.append(baseline_note(baseline, polyak_source, "polyak:ALGO"))
    if off:
        out.append(f"{'/'.join(a.upper() for a in off)} hyperparameters, identical in all libraries: "
                   f"{cfg.describe()}.")
        if "polyak-overlap" in libs:
            out.append("polyak overlap = polyak with act_before_update=True: each action is chosen before the "
                       "step's gradient update, which then runs while the env steps (the acting policy is one "
                       "update behind SB3's order; otherwise identical).")
        if "polyak" in libs:
            out.append("polyak normalises observations by default (normalize_obs=True, a running mean/std on the "
                       f"device); the {'/'.join(a.upper() for a in off)} runs keep that default. SB3 and SBX train "
                       "on raw observations.")
    for algo in (a for a in algos if a in ON_POLICY):
        out.append(f"{algo.upper()} hyperparameters, Stable-Baselines3's defaults given explicitly to every "
                   f"library: {describe(ON_POLICY_CONFIGS[algo])}, one env"
                   + (", Adam eps 1e-5." if algo == "ppo" else ", RMSprop (decay 0.99, eps 1e-5)."))
    if any(a in ON_POLICY for a in algos):
        n = {a: ON_POLICY_CONFIGS[a].n_steps for a in algos if a in ON_POLICY}
        out.append(f"{'/'.join(a.upper() for a in n)}: polyak runs without observation normalisation "
                   "(normalize_obs=False), as SB3 and SBX. Every library runs "
                   + ", ".join(f"{run_steps(a, steps)} steps for {a.upper()}" for a in n)
                   + " (--steps rounded up to whole rollouts, so all make the same updates); 'steady' starts "
                   "at the first step after the update at half the run.")
        if "polyak" in libs and "a2c" in algos:
            out.append("A2C's RMSprop: SB3 uses torch's (eps added to sqrt(v)), polyak optax's (eps inside the "
                       "square root); same cost.")
        if "sbx" in libs and "ppo" in algos:
            out.append("SBX PPO applies ortho_init to the policy's output layer only (its implementation); the "
                       "initialisation does not change the cost of a step.")
    out.append("steps/s = steps / wall time of learn(steps): it includes JIT compilation"
               + (f" and, for {'/'.join(a.upper() for a in off)}, the learning_starts={cfg.learning_starts} steps "
                  "of random actions without gradient steps" if off else "")
               + "; building the model is excluded (construct_s in the JSON). steady = the second half of the "
               "same run.")
    if "sb3" in libs:
        out.append("SB3 runs PyTorch on the CPU (device='cpu') with torch's default thread count; polyak and "
                   "SBX run JAX on its default backend with XLA's default threading.")
    if "sbx" in libs and "td3" in algos:
        out.append("SBX TD3 differs from SB3/polyak TD3 in two details no argument controls: it Polyak-updates "
                   "the target networks after every critic step (SB3/polyak: only on the delayed actor steps) "
                   "and its actor loss takes the min over both critics (SB3/polyak: Q1 only), i.e. slightly "
                   "more work per step.")
    if off and "polyak" in libs and ("sb3" in libs or "sbx" in libs):
        out.append("SB3 and SBX take their first gradient step after learning_starts + 1 environment steps, "
                   "polyak after learning_starts: one extra gradient step for polyak, negligible.")
    for (lib, algo), why in UNSUPPORTED.items():
        if lib in libs and algo in algos:
            out.append(f"{LIB_LABELS[lib]} {algo.upper()} not run: {why}.")
    if repeats == 1:
        out.append("A single repeat: on a shared or throttled machine steps/s can vary by 2x between runs; "
                   "use --repeats 3 or more (runs are interleaved, tables show median (min-max)).")
    if off and steps // 2 <= cfg.learning_starts:
        out.append(f"WARNING: steps // 2 = {steps // 2} <= learning_starts = {cfg.learning_starts}: the "
                   "'steady' window includes warm-up steps without gradient steps; use more --steps.")
    return out


def _csv_choice(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [s.strip().lower() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)} (comma separated), got {text!r}")
        return list(dict.fromkeys(items))

    return parse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description=f"Training speed (environment steps/s) of SAC, TD3, PPO and A2C on {ENV_ID} (or --env; one "
                    "env) in polyak, Stable-Baselines3 and SBX, with identical hyperparameters, each run in a fresh "
                    "subprocess.")
    parser.add_argument("--steps", type=_positive_int, default=6000, help="environment steps per run (default: 6000)")
    parser.add_argument("--algos", type=_csv_choice(ALGOS), default=list(DEFAULT_ALGOS),
                        help=f"comma-separated algorithms from {','.join(ALGOS)} (default: {','.join(DEFAULT_ALGOS)})")
    parser.add_argument("--libs", type=_csv_choice(LIBS), default=list(DEFAULT_LIBS),
                        help=f"comma-separated libraries from {','.join(LIBS)} (default: {','.join(DEFAULT_LIBS)}); "
                             "polyak-overlap is polyak with act_before_update=True (off-policy only)")
    parser.add_argument("--env", default=ENV_ID,
                        help=f"Gymnasium env id for every run, e.g. HalfCheetah-v5 (default: {ENV_ID})")
    parser.add_argument("--repeats", type=_positive_int, default=1,
                        help="runs per (library, algorithm); tables show the median (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of every run (default: 0)")
    parser.add_argument("--buffer-size", type=_positive_int, default=BenchConfig.buffer_size,
                        help=f"replay buffer capacity (default: {BenchConfig.buffer_size})")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="write all raw numbers as JSON")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--no-flops", action="store_true",
                        help="skip the FLOP-rate measurement (of SAC's update: only run when sac is in --algos)")
    parser.add_argument("--baseline-tree", type=Path, default=None, metavar="PATH",
                        help=f"a source checkout of an earlier polyak (e.g. a git worktree): adds the library "
                             f"{BASELINE}, measured by that tree's own worker (benchmarks/bench.py, or polyak/bench.py "
                             f"in older trees) with the tree first on PYTHONPATH, interleaved with the others in "
                             f"every repeat; tables add polyak/{BASELINE}, notes and --out its git commit")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: 'LIB:ALGO' or 'flops'
    return parser


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_all(args: argparse.Namespace, cfg: BenchConfig, unavailable: dict[str, str]) -> list[dict[str, Any]]:
    """Every (repeat, algo, lib) run, one subprocess after the other; updates `unavailable`."""
    runs: list[dict[str, Any]] = []
    tasks = [(r, algo, lib) for r in range(args.repeats) for algo in args.algos for lib in args.libs
             if (lib, algo) not in UNSUPPORTED]
    for i, (repeat, algo, lib) in enumerate(tasks, 1):
        if lib in unavailable:
            continue
        _log(f"[{i}/{len(tasks)}] {LIB_LABELS[lib]} {algo.upper()}, {run_steps(algo, args.steps)} steps"
             + (f", repeat {repeat + 1}/{args.repeats}" if args.repeats > 1 else "") + " ...")
        result = _spawn(f"{lib}:{algo}", args.steps, args.seed, cfg, getattr(args, "baseline", None))
        result.update(lib=lib, algo=algo, repeat=repeat)
        runs.append(result)
        if result["status"] == "ok":
            busy = f"  [other processes busy: {result['other_load_cores']:.1f} cores]" if _disturbed(result) else ""
            _log(f"    {result['steps_per_s']:,.0f} steps/s (steady {_fmt(result['steady_steps_per_s'])}) "
                 f"in {result['learn_s']:.1f} s{busy}")
        elif result["status"] == "unavailable":
            unavailable[lib] = result["error"]
            _log(f"note: skipping {LIB_LABELS[lib]}: cannot import it ({result['error']})")
        else:
            _log(f"    FAILED: {result['error']}")
    return runs


def problems(runs: list[dict[str, Any]], flops: dict[str, Any] | None, unavailable: dict[str, str]) -> list[str]:
    """Skipped libraries, failed runs and runs disturbed by other processes, one line each."""
    out = [f"{LIB_LABELS[lib]} skipped: {why}" for lib, why in unavailable.items()]
    for r in runs:
        name = f"{LIB_LABELS[r['lib']]} {r['algo'].upper()} (repeat {r['repeat'] + 1})"
        if r["status"] == "error":
            out.append(f"{name} failed: {r['error'].splitlines()[-1] if r['error'] else ''}")
        elif r["status"] == "ok" and _disturbed(r):
            out.append(f"WARNING: other processes kept {r['other_load_cores']:.1f} cores busy on average during "
                       f"{name}: its numbers are not representative of an idle machine.")
    if flops is not None and flops["status"] == "ok" and _disturbed(flops):
        out.append(f"WARNING: other processes kept {flops['other_load_cores']:.1f} cores busy on average during "
                   "the FLOP-rate measurement: its numbers are not representative of an idle machine.")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(None if argv is None else list(argv))
    cfg = BenchConfig(buffer_size=args.buffer_size, env_id=args.env)
    if cfg.buffer_size < cfg.batch_size:
        raise SystemExit(f"--buffer-size must be >= batch_size ({cfg.batch_size})")
    if args.worker is not None:
        return _worker(args.worker, args.steps, args.seed, cfg)

    args.baseline = polyak_source = None
    if args.baseline_tree is not None:
        args.baseline = baseline_source(args.baseline_tree, "bench")
        args.libs = with_baseline(args.libs)
        polyak_source = git_source(REPO_ROOT)
    libs, algos, md = args.libs, args.algos, args.markdown
    started = datetime.datetime.now().astimezone()
    machine, versions = machine_info(), library_versions()
    unavailable = {lib: f"module {LIB_MODULES[lib]!r} not installed"
                   for lib in libs if lib != BASELINE and importlib.util.find_spec(LIB_MODULES[lib]) is None}
    for lib, why in unavailable.items():
        _log(f"note: skipping {LIB_LABELS[lib]}: {why} (pip install 'polyak[bench]')")

    runs = run_all(args, cfg, unavailable)
    flops: dict[str, Any] | None = None
    if not args.no_flops and "sac" in algos:
        _log("FLOP rate: matmul and polyak SAC update ...")
        flops = _spawn("flops", args.steps, args.seed, cfg)
        if flops["status"] != "ok":
            _log(f"    FAILED: {flops['error']}")
    flops_ok = flops is not None and flops["status"] == "ok"
    summary = summarize(runs, algos, libs)

    bullet = "- " if md else ""
    print(f"{'## ' if md else ''}polyak speed benchmark: {', '.join(a.upper() for a in algos)} on {cfg.env_id} (one env), "
          f"{args.steps} steps per run, seed {args.seed}, median of {args.repeats} repeat(s)\n")
    print(f"{bullet}command: `python -m benchmarks.bench {shlex.join(sys.argv[1:] if argv is None else list(argv))}`")
    print(f"{bullet}date: {started.isoformat(timespec='seconds')}")
    print(f"{bullet}machine: {machine['cpu']}, {machine['logical_cores']} logical cores "
          f"({machine['usable_cores']} usable), {machine['os']}, Python {machine['python']}")
    print(f"{bullet}versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None))
    if flops is not None and flops_ok:
        print(f"{bullet}JAX backend: {flops['jax_backend']}")
    if args.baseline is not None:
        print(f"{bullet}polyak: {describe_source(polyak_source)}")
        print(f"{bullet}{BASELINE}: {describe_source(args.baseline)}, worker `python -m {args.baseline['module']}`")
    print()
    print(speed_table(summary, algos, libs, md))
    per_repeat = repeat_ratio_table(runs, algos, libs, md) if args.repeats > 1 else None
    if per_repeat is not None:
        print(f"\n{'### ' if md else ''}Same-run ratios of whole-run steps/s, repeat by repeat\n")
        print(per_repeat)
    for line in problems(runs, flops, unavailable):
        print(f"\n{bullet}{line}")

    derived: dict[str, Any] = {}
    if flops is not None and flops_ok:
        print(f"\n{'### ' if md else ''}FLOP rate of polyak's SAC update (batch {cfg.batch_size}, "
              f"net_arch {list(cfg.net_arch)}, {cfg.n_critics} critics)\n")
        table, derived = flops_section(flops, summary, md)
        print(table)

    note_lines = notes(cfg, args.steps, args.repeats, algos, [lib for lib in libs if lib not in unavailable],
                       args.baseline, polyak_source)
    if flops_ok:
        note_lines.append("FLOP rates: matmul and isolated-update rates are the best of 5 timed rounds, measured "
                          "in their own subprocess after the training runs; the end-to-end fractions combine "
                          "them with the training runs' medians, so machine noise affects them.")
    print(f"\n{'### ' if md else ''}Notes\n")
    for line in note_lines:
        print(f"- {line}")

    if args.out is not None:
        record = {"benchmark": "benchmarks.bench", "date": started.isoformat(timespec="seconds"), "env": cfg.env_id,
                  "steps": args.steps, "seed": args.seed, "repeats": args.repeats, "algos": algos, "libs": libs,
                  "hyperparameters": dataclasses.asdict(cfg),
                  "on_policy_hyperparameters": {a: dataclasses.asdict(ON_POLICY_CONFIGS[a]) for a in algos
                                                if a in ON_POLICY},
                  "machine": machine, "versions": versions,
                  "baseline": args.baseline, "polyak_source": polyak_source,
                  "unavailable": unavailable, "runs": runs, "summary": summary, "flops": flops,
                  "flops_end_to_end": derived, "notes": note_lines}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
        _log(f"raw numbers written to {args.out}")
    return 1 if any(r["status"] == "error" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
