"""Pure-JAX SAC and PPO speed: polyak's jitted training loop against rejax, in the same run.

Run it as ``python -m benchmarks.bench_jax`` (``--help`` lists the options), for example::

    python3 -m benchmarks.bench_jax --steps 20000 --seeds 1 8 --repeats 3 --markdown --libs polyak rejax
    python3 -m benchmarks.bench_jax --algo ppo --steps 200000 --seeds 1 8 --repeats 3 --markdown

What is measured
----------------
SAC (``--algo sac``) or PPO (``--algo ppo``) on Pendulum with the same hyperparameters in both
libraries (:class:`JaxBenchConfig`, :class:`PPOJaxBenchConfig`; the details that no argument can
make equal are listed by :func:`mismatches` and printed with the results). PPO runs whole
rollouts: ``--steps`` is rounded up to a multiple of the rollout length in both libraries. For
every library and every seed count N of ``--seeds``:

* **polyak, jitted** -- the JAX env ``polyak/Pendulum-v1`` in :class:`polyak.algos.offpolicy.jitted.JittedLoop`
  (:class:`polyak.algos.onpolicy.jitted.OnPolicyJittedLoop` for PPO; ``lax.scan`` over env steps, ``vmap`` over
  the N seeds), with a model built as :func:`polyak.runs.seeds.train_seeds` builds it, run in chunks of
  ``--chunk`` steps (SAC: 1000, as train_seeds; PPO: whole rollouts, by default 10 per call, see
  :attr:`PPOJaxBenchConfig.default_chunk`);
* **rejax, jitted** -- ``rejax.get_algo(ALGO).create(env="Pendulum-v1", ...)`` on gymnax's Pendulum,
  ``jax.jit(algo.train)`` for one seed and ``jax.jit(jax.vmap(algo.train))`` for N > 1, with its
  periodic evaluation switched off (no initial evaluation, ``eval_freq`` = the whole run and a
  no-op evaluation callback), so nothing but training is timed;

and, once per repeat, **polyak, host** -- ``polyak.SAC("MlpPolicy", "Pendulum-v1", ...).learn``
(or ``polyak.PPO``), the Gymnasium host loop, for one seed.

Every measurement runs in a fresh subprocess (no JIT cache or thread pool carries over), one after
the other; with ``--repeats R`` the whole sequence runs R times, interleaved, and the tables show
medians (min-max) and same-run ratios repeat by repeat.

* **compile s** -- jitted loops: tracing, lowering and XLA compilation of every program of the run
  (``jax.jit(f).lower(...).compile()``, ahead of the run). Host loop: the extra wall time that a
  first model spends on its first ``learning_starts + 1`` steps (PPO: its first rollout and update;
  JIT compilation of the step functions) compared with a second model of the same configuration,
  which finds them compiled.
* **env-steps/s** -- ``seeds x steps / wall time`` of the compiled run, from the initial state to
  ``block_until_ready`` of the final one (network and buffer initialisation and the
  ``learning_starts`` warm-up steps included, compilation excluded). "per seed" = steps / wall time.
* **final return** -- after the timed run (not timed), each seed's final policy acts
  deterministically (the mean action) for ``--eval-episodes`` episodes; the mean over seeds and
  episodes is shown, the per-seed means are in the JSON (``--out``).

Comparing with an earlier polyak
--------------------------------
``--baseline-tree PATH`` (a source checkout of an earlier polyak, e.g. a ``git worktree``) adds the
library ``polyak@base``: polyak's host and jitted measurements once more, made by that tree's own
worker (:func:`benchmarks.bench.baseline_worker_command`: ``python -m benchmarks.bench_jax --worker
polyak:LOOP:N``, or ``python -m polyak.bench_jax`` in trees from before the benchmarks moved out of
the package, with the tree as working directory and first on ``PYTHONPATH``), so that ``import
polyak`` there is the tree's polyak. Each repeat runs them right after polyak's; the ratio tables
add polyak/polyak@base (jitted per seed count, and host), and the notes and ``--out`` record the
tree's git commit. The baseline gets the same options (``--chunk`` included) but builds its models
with its own version of this file (its hyperparameters).

Workers are ``python -m benchmarks.bench_jax --worker LIB:LOOP:N`` and report one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import math
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from benchmarks.bench import (
    BASELINE,
    REPO_ROOT,
    RESULT_MARKER,
    WorkerCommand,
    _disturbed,
    _positive_int,
    baseline_note,
    baseline_source,
    baseline_worker_command,
    describe_source,
    git_source,
    library_versions,
    machine_info,
    render_table,
    run_worker,
    with_baseline,
)

LIBS = ("polyak", "rejax")
LIB_MODULES = {"polyak": "polyak", "rejax": "rejax"}
POLYAK_JAX_ENV = "polyak/Pendulum-v1"  # the JAX env of polyak's jitted loop
HOST_ENV = "Pendulum-v1"  # Gymnasium's, for polyak's host loop and for evaluating polyak's policies
REJAX_ENV = "Pendulum-v1"  # gymnax's
VERSION_PACKAGES = ("polyak", "jax", "jaxlib", "flax", "optax", "gymnasium", "numpy", "rejax", "gymnax", "distrax",
                    "chex")
INSTALL_REJAX = "pip install rejax==0.1.3 gymnax==0.0.9"
EVAL_SEED_OFFSET = 10_000  # seed s is evaluated on episodes seeded from 10000 + s, as polyak train does


@dataclass(frozen=True)
class JaxBenchConfig:
    """SAC hyperparameters given explicitly, and identically, to both libraries."""

    algo: ClassVar[str] = "sac"
    learning_rate: float = 1e-3  # actor, critics and temperature
    buffer_size: int = 1_000_000
    batch_size: int = 256
    tau: float = 0.005  # rejax: polyak = 1 - tau
    gamma: float = 0.99
    learning_starts: int = 1000  # the first gradient step comes right after the learning_starts-th env step
    gradient_steps: int = 1  # per env step (train_freq 1); rejax: num_epochs
    net_arch: tuple[int, ...] = (256, 256)  # actor and each critic, ReLU
    n_critics: int = 2
    normalize_obs: bool = True  # running mean/std of observations, on in both libraries
    # fixed, not arguments: one environment, automatic temperature from alpha = 1 with target
    # entropy -dim(A), target networks updated after every gradient step

    def describe(self) -> str:
        return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in dataclasses.asdict(self).items())

    def run_steps(self, steps: int) -> int:
        """Env steps per seed that both libraries actually run for --steps."""
        return steps

    @property
    def host_compile_steps(self) -> int:
        """Steps after which the host loop has called every one of its jitted functions."""
        return self.learning_starts + 1  # warm-up plus the first gradient step

    @property
    def default_chunk(self) -> int:
        """Env steps per compiled call of polyak's jitted loop unless --chunk says otherwise (train_seeds')."""
        return 1000

    def polyak_kwargs(self, seed: int) -> dict[str, Any]:
        """Keyword arguments of ``polyak.SAC("MlpPolicy", env, **kwargs)``."""
        return dict(seed=seed, learning_rate=self.learning_rate, buffer_size=self.buffer_size,
                    batch_size=self.batch_size, tau=self.tau, gamma=self.gamma, learning_starts=self.learning_starts,
                    train_freq=1, gradient_steps=self.gradient_steps, ent_coef="auto", target_entropy="auto",
                    target_update_interval=1, normalize_obs=self.normalize_obs, reward_scale=1.0,
                    policy_kwargs=dict(net_arch=list(self.net_arch), n_critics=self.n_critics), verbose=0)

    def rejax_config(self, steps: int) -> dict[str, Any]:
        """Keyword arguments of ``rejax.SAC.create(**config)`` (rejax 0.1.3); every field that matters is explicit."""
        return dict(
            env=REJAX_ENV, total_timesteps=steps,
            eval_freq=steps, skip_initial_evaluation=True,  # one evaluation at the very end, replaced by a no-op
            num_envs=1, buffer_size=self.buffer_size,
            # rejax trains once global_step > fill_buffer, polyak once step >= learning_starts: with
            # fill_buffer = learning_starts - 1 both take their first gradient step after the same env step
            fill_buffer=max(0, self.learning_starts - 1),
            batch_size=self.batch_size, learning_rate=self.learning_rate, gamma=self.gamma,
            polyak=1.0 - self.tau, target_update_freq=1, num_epochs=self.gradient_steps,
            hidden_layer_sizes=tuple(self.net_arch), agent_kwargs={"activation": "relu"},
            num_critics=self.n_critics, max_grad_norm=math.inf, normalize_observations=self.normalize_obs,
            normalize_rewards=False)

    def hyperparameter_note(self, rejax: bool) -> str:
        return (f"Hyperparameters{', identical in both libraries' if rejax else ''}: {self.describe()}; one "
                "environment, one gradient step per env step, automatic temperature from alpha = 1 with target "
                "entropy -dim(A) = -1, target critics updated after every gradient step"
                + (" (rejax: polyak = 1 - tau, target_update_freq 1, fill_buffer = learning_starts - 1, num_epochs "
                   "1, normalize_rewards off, no gradient clipping)." if rejax else "."))

    def mismatches(self, steps: int) -> list[str]:
        """What no argument can make equal between polyak and rejax 0.1.3 SAC (read from rejax's source)."""
        updates = max(1, steps - self.learning_starts + 1)  # gradient steps per seed in both libraries
        extra = min(steps, max(0, self.learning_starts - 1))  # warm-up steps that rejax computes under vmap
        out = [
            "Temperature loss: rejax minimises -alpha (log pi + H_target), polyak (like SB3) -log(alpha) (log pi + "
            "H_target); both start at alpha = 1, so the first steps agree and later ones differ by a factor alpha "
            "in the temperature gradient (same amount of computation).",
            "Update order: rejax updates the actor first (against the old critics), then the critics (their target "
            "uses the new actor), then alpha; polyak updates the critics, then the actor against the new critics, "
            "then alpha. Same networks and batch, same FLOPs per gradient step.",
            "Time limit: gymnax Pendulum reports the 200-step limit as done and rejax does not bootstrap there; "
            "polyak stores it as a truncation and bootstraps from the true final observation.",
            f"Warm-up: for the first {self.learning_starts} steps polyak acts uniformly at random, rejax with its "
            "initial (untrained, stochastic) policy.",
            "Replay sampling: polyak draws a batch uniformly with replacement, O(batch) per gradient step; rejax "
            "draws without replacement with jax.random.choice(p=...), which draws a Gumbel key for every one of the "
            f"buffer's {self.buffer_size:,} rows, O(buffer_size) per gradient step.",
            "Observation normaliser: both update the running mean/var (initial count 1e-4) with the observation to "
            "act on next (the reset one at an episode end) and normalise sampled batches with the current "
            "statistics; polyak clips normalised observations to +-10, rejax does not.",
            "Policy: polyak clips the log-std to [-20, 2], rejax to [-10, 2]; both are tanh-squashed Gaussians.",
            "Under vmap (seeds > 1) rejax's per-seed step counter turns its 'start training' lax.cond into a select: "
            f"its {extra} warm-up steps compute a gradient step each and discard it ({100 * extra / updates:.0f}% "
            f"more gradient-step computation than the {updates} kept at --steps {steps}). polyak's step counter is "
            "shared by all seeds, so its warm-up stays a real branch. With one seed rejax runs without vmap and "
            "skips them too.",
        ]
        if self.buffer_size >= 200_000:
            out.append(f"Because of rejax's O(buffer_size) sampling, its speed depends on --buffer-size; with "
                       f"--steps <= --buffer-size no row is ever overwritten, so --buffer-size equal to --steps trains "
                       f"the same way as {self.buffer_size:,} rows and shows the per-step cost without that term.")
        return out


@dataclass(frozen=True)
class PPOJaxBenchConfig:
    """PPO hyperparameters given explicitly, and with the same effect, to both libraries: SB3's defaults
    with one environment, as the Gymnasium benchmark (benchmarks.bench) runs them."""

    algo: ClassVar[str] = "ppo"
    learning_rate: float = 3e-4  # policy and value
    n_envs: int = 1  # rejax: num_envs
    n_steps: int = 2048  # rollout length per env; rejax: num_steps
    batch_size: int = 64  # minibatch size; rejax: num_minibatches = n_envs * n_steps / batch_size
    n_epochs: int = 10  # rejax: num_epochs
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2  # rejax: clip_eps, which also clips the value; polyak: clip_range_vf = clip_range
    ent_coef: float = 0.0
    vf_coef: float = 0.5  # rejax: 2 * vf_coef, because it halves the value loss
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 64)  # separate policy and value networks
    activation: str = "tanh"
    normalize_obs: bool = False  # SB3's default (no normaliser); polyak's own default would be True
    # fixed, not arguments: advantages normalised per minibatch (both), Gaussian policy with a
    # state-independent log-std initialised to 0 (both), constant learning rate, no reward normalisation

    def describe(self) -> str:
        return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in dataclasses.asdict(self).items())

    def validate(self) -> None:
        if self.n_steps < 1 or (self.n_envs * self.n_steps) % self.batch_size:
            raise SystemExit(f"--n-steps ({self.n_steps}) x n_envs ({self.n_envs}) must be a positive multiple of "
                             f"batch_size ({self.batch_size}): rejax splits a rollout into equal minibatches")

    def run_steps(self, steps: int) -> int:
        """Both libraries run whole rollouts: --steps rounded up to a multiple of n_envs x n_steps."""
        rollout = self.n_envs * self.n_steps
        return -(-steps // rollout) * rollout

    @property
    def host_compile_steps(self) -> int:
        return self.n_envs * self.n_steps  # one rollout and its update: start, collect and collect_update have run

    @property
    def default_chunk(self) -> int:
        """Ten rollouts per compiled call, fewer calls and one log read per ten rollouts. (With one rollout per
        call, what train_seeds' chunk of 1000 rounds to, XLA:CPU drops the loop over rollouts (trip count 1);
        while PPO shuffled with `jax.random.permutation`, whose sort then ran at the program's top level,
        that measured ~35% slower per rollout; with the sort-free shuffle the difference is within noise.)"""
        return 10 * self.n_envs * self.n_steps

    def polyak_kwargs(self, seed: int) -> dict[str, Any]:
        """Keyword arguments of ``polyak.PPO("MlpPolicy", env, **kwargs)``."""
        return dict(seed=seed, learning_rate=self.learning_rate, n_steps=self.n_steps, batch_size=self.batch_size,
                    n_epochs=self.n_epochs, gamma=self.gamma, gae_lambda=self.gae_lambda, clip_range=self.clip_range,
                    clip_range_vf=self.clip_range, normalize_advantage=True, ent_coef=self.ent_coef,
                    vf_coef=self.vf_coef, max_grad_norm=self.max_grad_norm, normalize_obs=self.normalize_obs,
                    normalize_reward=False,
                    policy_kwargs=dict(net_arch=list(self.net_arch), activation_fn=self.activation), verbose=0)

    def rejax_config(self, steps: int) -> dict[str, Any]:
        """Keyword arguments of ``rejax.PPO.create(**config)`` (rejax 0.1.3); every field that matters is explicit."""
        steps = self.run_steps(steps)
        return dict(
            env=REJAX_ENV, total_timesteps=steps,
            eval_freq=steps, skip_initial_evaluation=True,  # one evaluation at the very end, replaced by a no-op
            num_envs=self.n_envs, num_steps=self.n_steps, num_epochs=self.n_epochs,
            num_minibatches=self.n_envs * self.n_steps // self.batch_size, learning_rate=self.learning_rate,
            gamma=self.gamma, gae_lambda=self.gae_lambda, clip_eps=self.clip_range, ent_coef=self.ent_coef,
            vf_coef=2.0 * self.vf_coef, max_grad_norm=self.max_grad_norm,
            agent_kwargs={"activation": self.activation, "hidden_layer_sizes": tuple(self.net_arch)},
            normalize_observations=self.normalize_obs, normalize_rewards=False)

    def hyperparameter_note(self, rejax: bool) -> str:
        return (f"Hyperparameters{', identical in effect in both libraries' if rejax else ''}: {self.describe()}; "
                "advantages normalised per minibatch, Gaussian policy with a state-independent log-std from 0"
                + (" (rejax: num_envs, num_steps, num_epochs, num_minibatches = n_envs x n_steps / batch_size, "
                   "clip_eps = clip_range for the policy and the value (polyak: clip_range_vf = clip_range), "
                   "vf_coef = 2 x vf_coef as rejax halves the value loss, agent_kwargs activation and "
                   "hidden_layer_sizes, normalize_rewards off)." if rejax else "."))

    def mismatches(self, steps: int) -> list[str]:
        """What no argument can make equal between polyak and rejax 0.1.3 PPO (read from rejax's source)."""
        return [
            f"Gradient clipping: rejax clips every gradient element to +-{self.max_grad_norm} (optax.clip), polyak "
            f"(like SB3) the global gradient norm to {self.max_grad_norm} (optax.clip_by_global_norm).",
            "Optimiser: rejax keeps two Adam optimisers (eps 1e-8), one per network, and takes two gradients per "
            "minibatch (actor loss, then critic loss); polyak one Adam (eps 1e-5, as SB3) and one gradient of the "
            "joint loss. The networks share no parameters, so the gradients are the same up to the clipping.",
            "Values: rejax evaluates V(s_t) inside the collection loop, one observation per step; polyak evaluates "
            "V(s_t) and V(s'_t) for the whole rollout in two batched passes at the update (V(s') bootstraps "
            "time-limit truncations).",
            "Time limit: gymnax Pendulum reports the 200-step limit as done and rejax does not bootstrap there; "
            "polyak marks it as a truncation and bootstraps from V of the true final observation.",
            "Actions: rejax samples a Gaussian in the env's units ([-2, 2], std 1 at the start) and clips it; "
            "polyak samples in [-1, 1] (std 1 there, 2 in the env's units), clips and rescales. Same cost.",
            "Initialisation: rejax uses Flax's default (LeCun normal, zero bias), polyak orthogonal weights (gain "
            "sqrt 2; 0.01 for the policy's output, 1 for the value's). No effect on the cost of a step.",
            "Diagnostics: polyak's update also computes approx. KL, clip fraction, entropy, gradient norm and "
            "explained variance and checks them for NaN/inf; rejax computes none of these.",
        ]


BENCH_CONFIGS: dict[str, type] = {"sac": JaxBenchConfig, "ppo": PPOJaxBenchConfig}
BenchConfigType = JaxBenchConfig | PPOJaxBenchConfig


def polyak_kwargs(cfg: BenchConfigType, seed: int) -> dict[str, Any]:
    """Keyword arguments of ``polyak.ALGO("MlpPolicy", env, **kwargs)`` for the benchmark's algorithm."""
    return cfg.polyak_kwargs(seed)


def rejax_config(cfg: BenchConfigType, steps: int) -> dict[str, Any]:
    """Keyword arguments of ``rejax.get_algo(cfg.algo).create(**config)``."""
    return cfg.rejax_config(steps)


def mismatches(cfg: BenchConfigType, steps: int) -> list[str]:
    """What no argument can make equal between polyak and rejax 0.1.3."""
    return cfg.mismatches(steps)


# --------------------------------------------------------------------------------------------
# Worker side: what runs inside the subprocesses (heavy imports stay inside the functions)
# --------------------------------------------------------------------------------------------

def _no_evaluation(algo: Any, ts: Any, rng: Any) -> Any:
    """Replaces rejax's evaluation callback: the benchmark evaluates outside the timed run."""
    import jax.numpy as jnp

    return jnp.zeros(())


def _polyak_eval(model: Any, seed: int, episodes: int) -> float:
    from polyak.evaluation import evaluate_policy
    from polyak.runs.run import make_training_env

    returns, _ = evaluate_policy(model, make_training_env(HOST_ENV, 1), episodes, seed=EVAL_SEED_OFFSET + seed,
                                 return_episode_rewards=True)
    return float(sum(returns) / len(returns))


def run_polyak_host(cfg: BenchConfigType, steps: int, seed: int, episodes: int) -> dict[str, Any]:
    """polyak's Gymnasium host loop for one seed: compile with a first model, time a second one."""
    import polyak

    algo_cls = polyak.ALGORITHMS[cfg.algo]
    steps = cfg.run_steps(steps)
    first_steps = cfg.host_compile_steps  # every jitted step function has run once
    first = algo_cls("MlpPolicy", HOST_ENV, **polyak_kwargs(cfg, seed))
    t0 = time.perf_counter()
    first.learn(first_steps)
    first_s = time.perf_counter() - t0
    del first

    # a second model of the same configuration shares the jitted functions (polyak.algos.base.compiled)
    model = algo_cls("MlpPolicy", HOST_ENV, **polyak_kwargs(cfg, seed))
    mark: dict[str, float] = {}

    def callback(m: Any) -> None:
        if "t" not in mark and m.num_timesteps >= first_steps:
            mark["t"] = time.perf_counter()

    t0 = time.perf_counter()
    model.learn(steps, callback=callback)
    run_s = time.perf_counter() - t0
    compile_s = max(0.0, first_s - (mark["t"] - t0)) if "t" in mark else None
    returns = [_polyak_eval(model, seed, episodes)]
    return {"compile_s": compile_s, "run_s": run_s, "steps": int(model.num_timesteps), "final_returns": returns}


def run_polyak_jitted(cfg: BenchConfigType, steps: int, seeds: list[int], episodes: int,
                      chunk: int) -> dict[str, Any]:
    """polyak's fully jitted loop on polyak/Pendulum-v1, all seeds vmapped, as train_seeds runs it."""
    import jax
    import jax.numpy as jnp

    import polyak
    from polyak.algos.offpolicy.jitted import JittedLoop
    from polyak.algos.onpolicy.jitted import OnPolicyJittedLoop
    from polyak.envs.gym_compat import make_vector

    n_envs = getattr(cfg, "n_envs", 1)
    vector_env = make_vector(POLYAK_JAX_ENV, n_envs)
    jax_env, params = vector_env.env, vector_env.params
    models = [polyak.ALGORITHMS[cfg.algo]("MlpPolicy", vector_env, **polyak_kwargs(cfg, seed))
              for seed in seeds]  # as train_seeds
    spec = models[0].spec
    steps = cfg.run_steps(steps) // n_envs  # vector steps
    loop_cls = JittedLoop
    if isinstance(cfg, PPOJaxBenchConfig):  # as train_seeds: chunks of whole rollouts
        loop_cls, rollout = OnPolicyJittedLoop, cfg.n_steps
        chunk = max(rollout, chunk // rollout * rollout)
    chunk = min(chunk, steps)
    full, rest = divmod(steps, chunk)
    loops = {n: loop_cls(spec, jax_env, params, n) for n in {chunk, rest} if n}
    plan = [chunk] * full + ([rest] if rest else [])
    seed_array = jnp.asarray(seeds, jnp.uint32)

    t0 = time.perf_counter()
    init = loops[chunk].init.lower(seed_array).compile()
    shapes = jax.eval_shape(loops[chunk].init, seed_array)
    run = {n: loop.run_chunk.lower(shapes, jnp.int32(0)).compile() for n, loop in loops.items()}
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    states = init(seed_array)
    done = 0
    for n in plan:
        states, _ = run[n](states, jnp.int32(done))
        done += n
    jax.block_until_ready(states)
    run_s = time.perf_counter() - t0

    returns = []
    for i, (seed, model) in enumerate(zip(seeds, models)):
        model.learner = jax.tree.map(lambda x, i=i: x[i], states.learner)
        model.num_timesteps = int(model.learner.step)
        returns.append(_polyak_eval(model, seed, episodes))
    return {"compile_s": compile_s, "run_s": run_s, "steps": int(models[0].num_timesteps), "final_returns": returns}


def _rejax_eval(algo: Any, ts: Any, seeds: list[int], episodes: int, batched: bool) -> list[float]:
    """Mean deterministic return per seed, on gymnax Pendulum, in one jitted call: the policy's mean action,
    squashed by tanh (SAC) or clipped to the bounds (PPO), in the env's units."""
    import jax
    import jax.numpy as jnp

    env, env_params = algo.env, algo.env_params
    space = algo.action_space
    squashed = type(algo).__name__ == "SAC"
    low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
    max_steps = int(env_params.max_steps_in_episode)

    def act(ts: Any, obs: Any) -> Any:
        if algo.normalize_observations:
            obs = algo.normalize_obs(ts.obs_rms_state, obs)
        mean = algo.actor.apply(ts.actor_ts.params, obs[None], method="_action_dist").mean()[0]
        if squashed:
            return low + 0.5 * (jnp.tanh(mean) + 1.0) * (high - low)
        return jnp.clip(mean, low, high)  # rejax's GaussianPolicy acts in the env's units and clips

    def episode(ts: Any, key: Any) -> Any:
        k_reset, k_steps = jax.random.split(key)
        obs, state = env.reset(k_reset, env_params)

        def step(carry: Any, k: Any) -> Any:
            obs, state, total, alive = carry
            obs, state, reward, done, _ = env.step(k, state, act(ts, obs), env_params)
            return (obs, state, total + jnp.where(alive, reward, 0.0), alive & ~done), None

        carry = (obs, state, jnp.zeros(()), jnp.ones((), bool))
        (_, _, total, _), _ = jax.lax.scan(step, carry, jax.random.split(k_steps, max_steps))
        return total

    def seed_mean(ts: Any, seed: Any) -> Any:
        keys = jax.random.split(jax.random.PRNGKey(EVAL_SEED_OFFSET + seed), episodes)
        return jax.vmap(episode, in_axes=(None, 0))(ts, keys).mean()

    seed_array = jnp.asarray(seeds, jnp.uint32)
    if batched:
        means = jax.jit(jax.vmap(seed_mean))(ts, seed_array)
    else:
        means = jax.jit(seed_mean)(ts, seed_array[0])[None]
    return [float(x) for x in jax.device_get(means)]


def run_rejax(cfg: BenchConfigType, steps: int, seeds: list[int], episodes: int) -> dict[str, Any]:
    """rejax on gymnax Pendulum-v1: jax.jit(algo.train), vmapped over the seeds when there are several."""
    import jax
    import jax.numpy as jnp
    import rejax

    algo = rejax.get_algo(cfg.algo).create(**rejax_config(cfg, steps))
    algo = algo.replace(eval_callback=_no_evaluation)
    batched = len(seeds) > 1
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds]) if batched else jax.random.PRNGKey(seeds[0])
    train = jax.jit(jax.vmap(algo.train)) if batched else jax.jit(algo.train)

    t0 = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ts, _ = compiled(keys)
    jax.block_until_ready(ts)
    run_s = time.perf_counter() - t0

    global_step = jax.device_get(ts.global_step)
    done = int(global_step[0] if batched else global_step)
    return {"compile_s": compile_s, "run_s": run_s, "steps": done,
            "final_returns": _rejax_eval(algo, ts, seeds, episodes, batched)}


def run_task(task: str, cfg: BenchConfigType, steps: int, seed: int, episodes: int, chunk: int) -> dict[str, Any]:
    lib, loop, n = task.split(":")
    seeds = [seed + i for i in range(int(n))]
    if lib == "polyak" and loop == "host":
        out = run_polyak_host(cfg, steps, seeds[0], episodes)
    elif lib == "polyak":
        out = run_polyak_jitted(cfg, steps, seeds, episodes, chunk)
    else:
        out = run_rejax(cfg, steps, seeds, episodes)
    total = len(seeds) * out["steps"] / out["run_s"]
    if lib == "polyak":
        out["polyak_file"] = sys.modules["polyak"].__file__  # which polyak ran (see --baseline-tree)
    return {"lib": lib, "loop": loop, "seeds": len(seeds), "algo": cfg.algo, "status": "ok", **out,
            "steps_per_s_total": total, "steps_per_s_per_seed": total / len(seeds),
            "final_return_mean": sum(out["final_returns"]) / len(out["final_returns"])}


def _worker(task: str, cfg: BenchConfigType, steps: int, seed: int, episodes: int, chunk: int) -> int:
    lib = task.split(":")[0]
    try:
        __import__(LIB_MODULES[lib])
    except ImportError as exc:
        result = {"status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}
    else:
        result = run_task(task, cfg, steps, seed, episodes, chunk)
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Parent side: scheduling, summary, tables
# --------------------------------------------------------------------------------------------

def worker_command(task: str, args: argparse.Namespace) -> WorkerCommand:
    """The worker command of `task` ('LIB:LOOP:N'); polyak@base tasks run from --baseline-tree, same options."""
    worker_args = ["--algo", args.algo, "--steps", str(args.steps), "--seed", str(args.seed), "--eval-episodes",
                   str(args.eval_episodes), "--chunk", str(args.chunk)]
    for flag in ALGO_FLAGS[args.algo]:  # the algorithm's own options, as given (None: its default)
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            worker_args += [flag, str(value)]
    if task.split(":")[0] == BASELINE:
        if args.baseline_tree is None:
            raise ValueError(f"task {task!r} needs --baseline-tree")
        return baseline_worker_command(args.baseline_tree, task, worker_args, "bench_jax")
    return WorkerCommand([sys.executable, "-m", "benchmarks.bench_jax", "--worker", task, *worker_args])


def _spawn(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; also record how many cores other processes kept busy.
    A polyak@base result gets the tree and, where its worker does not report it, the polyak file found there."""
    result = run_worker(worker_command(task, args))
    baseline = getattr(args, "baseline", None)
    if task.split(":")[0] == BASELINE and baseline is not None:
        result["source_tree"] = baseline["tree"]
        result.setdefault("polyak_file", baseline["polyak_file"])
    return result


def check_rejax() -> None:
    """Exit with an installation hint unless a working rejax (0.1.3 with gymnax < 1) is importable."""
    if importlib.util.find_spec("rejax") is None or importlib.util.find_spec("gymnax") is None:
        raise SystemExit(f"benchmarks.bench_jax: rejax is not installed; install with: {INSTALL_REJAX} "
                         "(gymnax 1.x breaks rejax 0.1.3), or leave it out with --libs polyak")
    version = importlib.metadata.version("gymnax")
    if int(version.split(".")[0]) >= 1:
        raise SystemExit(f"benchmarks.bench_jax: gymnax {version} is installed, which breaks rejax 0.1.3 "
                         f"('too many values to unpack' in env.step); install with: {INSTALL_REJAX}")


def tasks(args: argparse.Namespace) -> list[tuple[int, str]]:
    """(repeat, 'LIB:LOOP:N') in run order: every repeat runs the whole set, libraries back to back."""
    out = []
    for repeat in range(args.repeats):
        for lib in args.libs:
            if lib in ("polyak", BASELINE) and not args.no_host:
                out.append((repeat, f"{lib}:host:1"))
        for n in args.seeds:
            for lib in args.libs:
                out.append((repeat, f"{lib}:jitted:{n}"))
    return out


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_all(args: argparse.Namespace, cfg: BenchConfigType) -> list[dict[str, Any]]:
    runs = []
    todo = tasks(args)
    for i, (repeat, task) in enumerate(todo, 1):
        lib, loop, n = task.split(":")
        _log(f"[{i}/{len(todo)}] {lib} {cfg.algo.upper()} {loop} loop, {n} seed(s) x {cfg.run_steps(args.steps)} steps"
             + (f", repeat {repeat + 1}/{args.repeats}" if args.repeats > 1 else "") + " ...")
        result = _spawn(task, args)
        result.update(lib=lib, loop=loop, seeds=int(n), repeat=repeat)
        runs.append(result)
        if result["status"] == "ok":
            busy = f"  [other processes busy: {result['other_load_cores']:.1f} cores]" if _disturbed(result) else ""
            compile_s = "—" if result["compile_s"] is None else f"{result['compile_s']:.1f} s"
            _log(f"    {result['steps_per_s_total']:,.0f} env-steps/s total ({result['steps_per_s_per_seed']:,.0f} "
                 f"per seed) in {result['run_s']:.1f} s, compile {compile_s}, final return "
                 f"{result['final_return_mean']:.1f}{busy}")
        else:
            _log(f"    FAILED: {result['error']}")
    return runs


SUMMARY_KEYS = ("steps_per_s_per_seed", "steps_per_s_total", "compile_s", "run_s", "final_return_mean")
ROW_ORDER = [("polyak", "host"), (BASELINE, "host"), ("polyak", "jitted"), (BASELINE, "jitted"), ("rejax", "jitted")]


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """summary['LIB:LOOP:N'] = {KEY: median, KEY_min, KEY_max, n} over the repeats that succeeded."""
    summary: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.get("status") != "ok":
            continue
        summary.setdefault(f"{run['lib']}:{run['loop']}:{run['seeds']}", {"runs": []})["runs"].append(run)
    for entry in summary.values():
        ok = entry.pop("runs")
        entry["n"] = len(ok)
        for key in SUMMARY_KEYS:
            values = [r[key] for r in ok if r.get(key) is not None]
            entry[key] = statistics.median(values) if values else None
            entry[key + "_min"] = min(values, default=None)
            entry[key + "_max"] = max(values, default=None)
    return summary


def _fmt(value: float | None, digits: int = 0, sep: str = ",") -> str:
    return "—" if value is None else f"{value:{sep}.{digits}f}"


def _spread(entry: dict[str, Any], key: str, digits: int = 0, sep: str = ",") -> str:
    """The median, followed by (min–max) when there were several repeats."""
    if entry.get(key) is None:
        return "—"
    text = _fmt(entry[key], digits, sep)
    low, high = _fmt(entry[key + "_min"], digits, sep), _fmt(entry[key + "_max"], digits, sep)
    if entry["n"] > 1 and low != high:
        text += f" ({low} – {high})"
    return text


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def speed_table(summary: dict[str, Any], seeds: Sequence[int], markdown: bool) -> str:
    header = ["library", "loop", "seeds", "env-steps/s per seed", "total env-steps/s", "compile s",
              "final return mean"]
    rows = []
    keys = ([f"{lib}:host:1" for lib, loop in ROW_ORDER if loop == "host"]
            + [f"{lib}:{loop}:{n}" for n in seeds for lib, loop in ROW_ORDER if loop != "host"])
    for key in keys:
        entry = summary.get(key)
        if entry is None:
            continue
        lib, loop, n = key.split(":")
        rows.append([lib, loop, n, _spread(entry, "steps_per_s_per_seed"), _spread(entry, "steps_per_s_total"),
                     _spread(entry, "compile_s", 1), _spread(entry, "final_return_mean", 1, sep="")])
    return render_table(header, rows, markdown, right=[False, False, True, True, True, True, True])


def _run_of(runs: list[dict[str, Any]], task: str, repeat: int) -> dict[str, Any] | None:
    lib, loop, n = task.split(":")
    for r in runs:
        if (r["lib"], r["loop"], r["seeds"], r["repeat"], r["status"]) == (lib, loop, int(n), repeat, "ok"):
            return r
    return None


def ratio_columns(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(label, numerator task, denominator task) of the same-run ratios that this run can show."""
    cols = []
    if BASELINE in args.libs and "polyak" in args.libs:
        cols += [(f"polyak/{BASELINE}, {n} seed{'s' if n > 1 else ''}", f"polyak:jitted:{n}", f"{BASELINE}:jitted:{n}")
                 for n in args.seeds]
        if not args.no_host:
            cols.append((f"polyak/{BASELINE} host, 1 seed", "polyak:host:1", f"{BASELINE}:host:1"))
    if "rejax" in args.libs and "polyak" in args.libs:
        cols += [(f"polyak/rejax, {n} seed{'s' if n > 1 else ''}", f"polyak:jitted:{n}", f"rejax:jitted:{n}")
                 for n in args.seeds]
    if "polyak" in args.libs and not args.no_host and 1 in args.seeds:
        cols.append(("polyak jitted/host, 1 seed", "polyak:jitted:1", "polyak:host:1"))
    return cols


def ratio_tables(runs: list[dict[str, Any]], summary: dict[str, Any], args: argparse.Namespace,
                 markdown: bool) -> tuple[str, str, dict[str, Any]] | None:
    """Ratios of env-steps/s: of the medians, and repeat by repeat (each repeat runs all back to back)."""
    cols = ratio_columns(args)
    if not cols:
        return None
    key = "steps_per_s_total"
    medians = {label: _ratio(summary.get(a, {}).get(key), summary.get(b, {}).get(key)) for label, a, b in cols}
    per_repeat: dict[str, list[str]] = {label: [] for label, _, _ in cols}
    rows = []
    for repeat in range(args.repeats):
        row = [str(repeat + 1)]
        for label, a, b in cols:
            ra, rb = _run_of(runs, a, repeat), _run_of(runs, b, repeat)
            cell = _ratio(ra and ra[key], rb and rb[key])
            per_repeat[label].append(cell)
            row.append(cell)
        rows.append(row)
    right = [False] + [True] * len(cols)
    median_table = render_table(["measure", *(label for label, _, _ in cols)], [["ratio of medians",
                                *(medians[label] for label, _, _ in cols)]], markdown, right=right)
    repeat_table = render_table(["repeat", *(label for label, _, _ in cols)], rows, markdown, right=right)
    return median_table, repeat_table, {"of_medians": medians, "per_repeat": per_repeat}


def notes(cfg: BenchConfigType, args: argparse.Namespace) -> list[str]:
    rejax = "rejax" in args.libs
    sac = isinstance(cfg, JaxBenchConfig)
    steps = cfg.run_steps(args.steps)
    out = [cfg.hyperparameter_note(rejax)]
    baseline = getattr(args, "baseline", None)
    if baseline is not None and BASELINE in args.libs:
        out.append(baseline_note(baseline, getattr(args, "polyak_source", None), "polyak:LOOP:N")
                   + " It gets the same options, --chunk included.")
    if steps != args.steps:
        out.append(f"Every library runs {steps} env steps per seed: --steps {args.steps} rounded up to whole rollouts "
                   f"of {cfg.n_envs} x {cfg.n_steps}.")
    out.append("env-steps/s = seeds x steps / wall time of the compiled run (initial state to block_until_ready; "
               + (f"includes the {cfg.learning_starts} warm-up steps, " if sac else "")
               + "excludes compilation). compile s: jitted loops = lower + XLA compile of all programs ahead of the "
               f"run; host loop = a first model's extra time over its first {cfg.host_compile_steps} steps against a "
               "second model that finds the functions compiled.")
    chunk = min(args.chunk, steps) if sac else min(steps, max(cfg.n_steps, args.chunk // cfg.n_steps * cfg.n_steps))
    host_calls = ("a buffer-write call and a training-step call per env step, both jitted and donated" if sac else
                  "one jitted, donated collect call per env step, with the update in the call of a rollout's last "
                  "step")
    out.append(f"polyak jitted runs {POLYAK_JAX_ENV} (JAX, equal to Gymnasium's step for step) in "
               f"{'polyak.algos.offpolicy.jitted.JittedLoop' if sac else 'polyak.algos.onpolicy.jitted.OnPolicyJittedLoop'}"
               f", chunks of {chunk} steps, vmapped over "
               f"seeds (one seed runs without vmap); polyak host runs Gymnasium's Pendulum-v1 in "
               f"{cfg.algo.upper()}.learn ({host_calls})"
               + ("; rejax runs gymnax Pendulum-v1 in jax.jit(algo.train), with jax.vmap over the seeds when "
                  "there are several." if rejax else "."))
    out.append(f"final return: deterministic policy ({'tanh of the mean' if sac else 'the mean, clipped to the bounds'}"
               f"), {args.eval_episodes} episode(s) per seed, mean over seeds; polyak on Gymnasium Pendulum-v1 (reset "
               "seeds 10000 + seed, ...)"
               + (", rejax on gymnax Pendulum-v1 (keys from PRNGKey(10000 + seed))" if rejax else "")
               + "; not timed.")
    if not sac and chunk < 2 * cfg.n_envs * cfg.n_steps:
        out.append("One rollout per compiled call: XLA:CPU drops a loop of one trip and runs the rollout and the "
                   "update at the program's top level (within noise of a loop of two or more rollouts since the "
                   "sort-free minibatch shuffle; the default chunk is 10 rollouts).")
    if rejax:
        out += ["Not matchable by arguments: " + line for line in mismatches(cfg, steps)]
    if args.repeats == 1:
        out.append("A single repeat: on a shared machine env-steps/s can vary a lot between runs; use --repeats 3 "
                   "(runs are interleaved; tables show median (min–max) and same-run ratios).")
    return out


def problems(runs: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in runs:
        name = f"{r['lib']} {r['loop']} {r['seeds']} seed(s) (repeat {r['repeat'] + 1})"
        if r["status"] != "ok":
            out.append(f"{name} failed: {r.get('error', '').strip().splitlines()[-1:] or ''}")
        elif _disturbed(r):
            out.append(f"WARNING: other processes kept {r['other_load_cores']:.1f} cores busy on average during "
                       f"{name}: its numbers are not representative of an idle machine.")
    return out


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_jax",
        description="Pure-JAX SAC or PPO speed on Pendulum: polyak's jitted loop (and its host loop) against "
                    "rejax, matched hyperparameters, each measurement in a fresh subprocess.")
    parser.add_argument("--algo", choices=sorted(BENCH_CONFIGS), default="sac", help="algorithm (default: sac)")
    parser.add_argument("--steps", type=_positive_int, default=20_000, help="env steps per seed (default: 20000)")
    parser.add_argument("--seeds", type=_positive_int, nargs="+", default=[1, 8],
                        help="seed counts to vmap (default: 1 8)")
    parser.add_argument("--libs", nargs="+", choices=LIBS, default=list(LIBS), help="libraries (default: polyak rejax)")
    parser.add_argument("--repeats", type=_positive_int, default=3, help="interleaved repeats; medians (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; N seeds are seed..seed+N-1 (default: 0)")
    parser.add_argument("--buffer-size", type=_positive_int, default=None,
                        help=f"SAC: replay buffer rows per seed, both libraries "
                             f"(default: {JaxBenchConfig.buffer_size})")
    parser.add_argument("--learning-starts", type=int, default=None,
                        help=f"SAC: warm-up env steps before the first gradient step (default: "
                             f"{JaxBenchConfig.learning_starts})")
    parser.add_argument("--n-steps", type=_positive_int, default=None,
                        help=f"PPO: rollout length, a multiple of the minibatch size {PPOJaxBenchConfig.batch_size} "
                             f"(default: {PPOJaxBenchConfig.n_steps})")
    parser.add_argument("--eval-episodes", type=_positive_int, default=10,
                        help="deterministic evaluation episodes per seed after training (default: 10)")
    parser.add_argument("--chunk", type=_positive_int, default=None,
                        help="env steps per compiled call of polyak's jitted loop (default: SAC 1000, as train_seeds; "
                             "PPO 10 rollouts; PPO chunks are whole rollouts, at least one)")
    parser.add_argument("--no-host", action="store_true", help="skip polyak's host (Gymnasium) loop")
    parser.add_argument("--baseline-tree", type=Path, default=None, metavar="PATH",
                        help=f"a source checkout of an earlier polyak (e.g. a git worktree): adds the library "
                             f"{BASELINE}, polyak's host and jitted runs made by that tree's own worker "
                             f"(benchmarks/bench_jax.py, or polyak/bench_jax.py in older trees) with the tree first on "
                             f"PYTHONPATH, each right after polyak's in every repeat; ratio tables add "
                             f"polyak/{BASELINE}, notes and --out its git commit")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="write all raw numbers as JSON")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: 'LIB:LOOP:N'
    return parser


ALGO_FLAGS = {"sac": ("--buffer-size", "--learning-starts"), "ppo": ("--n-steps",)}  # options of one algorithm


def make_config(args: argparse.Namespace) -> BenchConfigType:
    """The algorithm's benchmark configuration from the command line; options of another algorithm are errors."""
    given = {flag: getattr(args, flag.lstrip("-").replace("-", "_")) for flags in ALGO_FLAGS.values() for flag in flags}
    wrong = [flag for flag, value in given.items() if value is not None and flag not in ALGO_FLAGS[args.algo]]
    if wrong:
        raise SystemExit(f"{', '.join(wrong)} do(es) not apply to --algo {args.algo}")
    fields = {flag.lstrip("-").replace("-", "_"): value for flag, value in given.items() if value is not None}
    cfg = BENCH_CONFIGS[args.algo](**fields)
    if isinstance(cfg, PPOJaxBenchConfig):
        cfg.validate()
    else:
        if cfg.learning_starts < 1:
            raise SystemExit("--learning-starts must be >= 1")
        if cfg.buffer_size < cfg.batch_size:
            raise SystemExit(f"--buffer-size must be >= batch_size ({cfg.batch_size})")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    args.libs = list(dict.fromkeys(args.libs))
    args.seeds = list(dict.fromkeys(args.seeds))
    cfg = make_config(args)
    if args.chunk is None:
        args.chunk = cfg.default_chunk
    if args.worker is not None:
        return _worker(args.worker, cfg, args.steps, args.seed, args.eval_episodes, args.chunk)
    if "rejax" in args.libs:
        check_rejax()
    args.baseline = args.polyak_source = None
    if args.baseline_tree is not None:
        args.baseline_tree = args.baseline_tree.resolve()
        args.baseline = baseline_source(args.baseline_tree, "bench_jax")
        args.libs = with_baseline(args.libs)
        args.polyak_source = git_source(REPO_ROOT)

    md = args.markdown
    started = datetime.datetime.now().astimezone()
    machine, versions = machine_info(), library_versions(VERSION_PACKAGES)
    runs = run_all(args, cfg)
    summary = summarize(runs)

    bullet = "- " if md else ""
    title = args.libs[0] + (f" against {', '.join(args.libs[1:])}" if len(args.libs) > 1 else "")
    print(f"{'## ' if md else ''}Pure-JAX {cfg.algo.upper()} on Pendulum-v1: {title}, {cfg.run_steps(args.steps)} env "
          f"steps per seed, median of {args.repeats} repeat(s)\n")
    print(f"{bullet}command: `python3 -m benchmarks.bench_jax {shlex.join(argv)}`")
    print(f"{bullet}date: {started.isoformat(timespec='seconds')}")
    print(f"{bullet}machine: {machine['cpu']}, nproc {machine['usable_cores']} ({machine['logical_cores']} logical "
          f"cores), {machine['os']}, Python {machine['python']}")
    print(f"{bullet}versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None))
    if args.baseline is not None:
        print(f"{bullet}polyak: {describe_source(args.polyak_source)}")
        print(f"{bullet}{BASELINE}: {describe_source(args.baseline)}, worker `python -m {args.baseline['module']}`")
    print()
    print(speed_table(summary, args.seeds, md))
    ratios = ratio_tables(runs, summary, args, md)
    if ratios is not None:
        median_table, repeat_table, _ = ratios
        print(f"\n{'### ' if md else ''}Same-run ratios of total env-steps/s\n")
        print(median_table)
        print()
        print(repeat_table)
    trouble = problems(runs)
    if trouble:
        print()
    for line in trouble:
        print(f"{bullet}{line}")
    note_lines = notes(cfg, args)
    print(f"\n{'### ' if md else ''}Notes\n")
    for line in note_lines:
        print(f"- {line}")

    if args.out is not None:
        record = {"benchmark": "benchmarks.bench_jax", "command": f"python3 -m benchmarks.bench_jax {shlex.join(argv)}",
                  "date": started.isoformat(timespec="seconds"), "algo": cfg.algo, "steps": args.steps,
                  "steps_run": cfg.run_steps(args.steps), "seeds": args.seeds,
                  "libs": args.libs, "repeats": args.repeats, "first_seed": args.seed,
                  "hyperparameters": dataclasses.asdict(cfg), "rejax_config": {
                      k: (repr(v) if isinstance(v, float) and math.isinf(v) else v)
                      for k, v in rejax_config(cfg, args.steps).items()},
                  "machine": machine, "versions": versions, "baseline": args.baseline,
                  "polyak_source": args.polyak_source, "runs": runs, "summary": summary,
                  "ratios": None if ratios is None else ratios[2], "notes": note_lines}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
        _log(f"raw numbers written to {args.out}")
    return 1 if any(r["status"] != "ok" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
