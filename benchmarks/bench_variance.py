"""Variance of REINFORCE's policy-gradient estimator for each baseline, at one fixed policy.

Run it as ``python -m benchmarks.bench_variance [--env CartPole-v1] [--batches 200] [--batch-steps 1000]
[--seed 0] [--markdown] [--out DIR]``.

What is measured
----------------
The lecture's claim: any baseline b that does not depend on the action leaves the expected gradient
unchanged (E[grad log pi(a|s)] = 0) and changes only its variance, in the order
none > constant > time-dependent > state-dependent. The last step holds only if the "state" contains
everything the return-to-go depends on: under a time limit the MDP's state is (s, t) (Pardo et al. 2018),
so the benchmark has two state-dependent baselines, V(s) ("state", blind to the time left) and
V(s, t) ("state_time"). To see the ordering, everything but the baseline is fixed:

1. **The policy.** A ``REINFORCE(baseline="state")`` model trained for ``--train-steps`` steps (default
   20,000, with the tuned hyperparameters of polyak/zoo.py) on the env. A partly trained policy
   rather than the initial one: it is the regime REINFORCE spends its time in, episodes are longer
   and vary more (CartPole: 51 ± 25 steps after 20k training steps against 22 ± 12 at the start),
   so returns depend on the time step and the state, which the time and state baselines exploit;
   it is not yet good, so the gradient is far from zero. ``--train-steps 0`` measures the initial
   policy. Its parameters (and observation normaliser) are frozen from here on and are the same for
   every baseline.
2. **The state baselines V(s) and V(s, t).** V(s) starts from the model's critic; V(s, t) from the
   same net with one more input, t / time_horizon (time_horizon: the env's time limit), whose
   weights start at zero, so both start as the same function. Each is then fitted (value head
   only, Adam, ``--fit-steps`` steps, on the returns standardised by their mean and std, so the
   fit does not depend on the reward scale) to Monte-Carlo returns of the fixed policy on the same
   *separate* rollouts (``--fit-batches`` batches, other env seeds), so it estimates V^pi of this
   very policy. Their explained variances on the benchmark's own rollouts are reported.
3. **The batches.** ``--batches`` independent batches, each ``--batch-steps`` steps of
   ``--envs-per-batch`` envs from a reset (one env per batch by default: a rollout of REINFORCE's
   default shape, 1000 x 1), all collected at once in one Gymnasium vector env with the frozen
   policy sampling actions.
4. **The estimates.** For each batch and each baseline (none, constant, time, state, state_time) the gradient
   g (flattened, policy parameters only, ascent direction) of REINFORCE's own loss,
   ``REINFORCEAgent.advantages`` then ``jax.grad(REINFORCEAgent.loss)`` — exactly what a training
   update uses, with normalize_advantage off (normalising rescales each batch's advantages, which
   would hide the baseline's effect) and no entropy bonus.

Reported per baseline: the total variance tr Cov(g) = sum of the per-parameter variances over the
batches (ddof 1) and its ratio to "none"; the noise-to-signal ratio tr Cov(g) / ||mean g||^2 and its
ratio to "none" (an estimator that is merely shrunk towards zero has a lower variance but the same
noise-to-signal ratio); the norm of the mean gradient; the cosine of the mean gradient with that
of "none"; and a paired test of E[g]: with d_i = g_i - g_i(none) on the same batch,
``shift/noise`` = ||mean d|| / sqrt(tr Cov(d) / B), about 1 when the two estimators have the same
expectation, growing like sqrt(B) when they do not.

Note what the estimators are, and what each baseline sees:

* "none", "constant" and "time" use only rows whose episode ended inside the batch (their return is
  known). The constant and time baselines are averages over the batch's *other* rows (a row's own
  return in b would depend on its action and shrink the gradient by (1 - 1/n)): "constant" sees
  nothing, "time" sees the time step t through the batch's other episodes at t (b = 0 where no
  other episode of the batch reached t).
* "state" (V(s)) sees the observation, "state_time" (V(s, t)) the observation and t. Both use every
  row and bootstrap the episode cut by the batch's end, from V(s') or V(s', t + 1). "state" also
  bootstraps at a time limit, which changes the return it estimates (shift/noise well above 1
  where episodes end at a time limit); "state_time" treats a time-limit end as terminal (with t in
  the state it is one), so on complete episodes its returns are those of "none".
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from polyak.algos.onpolicy.learner import Rollout, explained_variance
from polyak.algos.onpolicy.reinforce import BASELINES, REINFORCE, REINFORCEAgent
from polyak.core.normalizer import rms_normalize
from polyak.envs.stepping import VectorEnvStepper


@dataclasses.dataclass(frozen=True)
class VarianceBenchConfig:
    env: str = "CartPole-v1"
    batches: int = 200  # independent batches B
    batch_steps: int = 1000  # rollout length T of a batch
    envs_per_batch: int = 1  # envs per batch (a batch is a (T, envs_per_batch) rollout)
    seed: int = 0
    train_steps: int = 20_000  # training of the fixed policy (0: the initial policy)
    fit_batches: int = 50  # separate batches for fitting V to the fixed policy's returns
    fit_steps: int = 1000  # Adam steps of the value fit (0: the model's critic as it is)
    fit_minibatch: int = 2048
    fit_lr: float = 1e-3

    def validate(self) -> None:
        for name in ("batches", "batch_steps", "envs_per_batch", "fit_batches", "fit_minibatch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batches < 2:
            raise ValueError(f"batches must be >= 2 to estimate a variance, got {self.batches}")
        if self.train_steps < 0 or self.fit_steps < 0:
            raise ValueError(f"train_steps and fit_steps must be >= 0, got {self.train_steps}, {self.fit_steps}")
        if self.fit_lr <= 0:
            raise ValueError(f"fit_lr must be > 0, got {self.fit_lr}")


# --------------------------------------------------------------------------------------------
# 1. The fixed policy
# --------------------------------------------------------------------------------------------


def fixed_policy(cfg: VarianceBenchConfig) -> REINFORCE:
    """A REINFORCE(baseline="state") model trained for cfg.train_steps with the env's tuned settings."""
    from polyak.runs.run import make_training_env
    from polyak.runs.zoo import tuned_hyperparameters

    hp = tuned_hyperparameters("reinforce", cfg.env)
    n_envs = int(hp.pop("n_envs", 1))
    env_kwargs = hp.pop("env_kwargs", {})
    hp.update(baseline="state")
    model = REINFORCE("MlpPolicy", make_training_env(cfg.env, n_envs, env_kwargs), seed=cfg.seed, **hp)
    if model.config.normalize_reward:
        raise ValueError("the variance benchmark compares gradients in reward units: use normalize_reward=False")
    if cfg.train_steps:
        model.learn(cfg.train_steps)
    return model


def benchmark_agent(model: REINFORCE, baseline: str) -> REINFORCEAgent:
    """The model's agent with another baseline, no advantage normalisation and no entropy bonus."""
    a = model.agent
    config = dataclasses.replace(a.cfg, baseline=baseline, normalize_advantage=False, ent_coef=0.0)
    return REINFORCEAgent(config, a.obs_dim, a.act_dim, a.n_actions)


# --------------------------------------------------------------------------------------------
# Rollouts of the frozen policy
# --------------------------------------------------------------------------------------------


def collect(model: REINFORCE, env_id: str, n_envs: int, steps: int, env_seed: int) -> tuple[Rollout, dict[str, float]]:
    """`steps` steps of `n_envs` envs from a reset with the frozen policy: a Rollout of shape (steps, n_envs).

    Rows are filled as the training loop fills them (normalised s_t and s'_t, the true final
    observation at a time limit, time_in_episode counted from 0 at each reset).
    """
    from polyak.runs.run import make_training_env

    if n_envs < 2:
        raise ValueError(f"collect needs >= 2 envs, got {n_envs}")
    stepper = VectorEnvStepper(make_training_env(env_id, n_envs), env_seed)
    if not stepper.same_step:
        raise ValueError(f"{env_id}: the benchmark needs a SAME_STEP vector env (every step a transition)")
    agent, rms, normalize = model.agent, model.learner.obs_rms, model.config.normalize_obs
    policy_state = model.learner.agent
    rows: dict[str, list[np.ndarray]] = {f: [] for f in Rollout._fields}
    obs, t = stepper.reset(), np.zeros(n_envs, np.float32)
    key = jax.random.PRNGKey(env_seed)
    returns, episode_return = [], np.zeros(n_envs)
    for _ in range(steps):
        action, log_prob, key = _act(agent, normalize, policy_state, rms, jnp.asarray(obs), key)
        action = np.asarray(action)
        batch = stepper.step(model.scaler.to_env(action))
        end = batch.terminated | batch.truncated
        for name, value in (("obs", obs), ("action", action), ("log_prob", log_prob), ("reward", batch.reward),
                            ("next_obs", batch.next_obs), ("terminated", batch.terminated),
                            ("episode_end", end), ("time_in_episode", t)):
            rows[name].append(np.asarray(value, np.float32))
        episode_return += batch.reward
        returns.extend(episode_return[end].tolist())
        episode_return[end] = 0.0
        obs, t = batch.obs, np.where(batch.episode_start, 0.0, t + 1.0).astype(np.float32)
    stepper.env.close()
    arrays = {k: jnp.asarray(np.stack(v)) for k, v in rows.items()}
    for k in ("obs", "next_obs"):  # normalised with the frozen statistics, as the policy saw them
        arrays[k] = rms_normalize(rms, arrays[k], enabled=normalize)
    stats = {"episodes": len(returns), "episode_return_mean": float(np.mean(returns)) if returns else float("nan"),
             "episode_return_std": float(np.std(returns)) if returns else float("nan")}
    return Rollout(**arrays), stats


@functools.partial(jax.jit, static_argnums=(0, 1))
def _act(agent: REINFORCEAgent, normalize: bool, policy_state, rms, obs, key):
    """a ~ pi(.|normalise(obs)) with the frozen normaliser; returns (a, log pi(a|s), next key)."""
    key, k = jax.random.split(key)
    action, log_prob = agent.act(policy_state, rms_normalize(rms, obs, enabled=normalize), k, False)
    return action, log_prob, key


def split_batches(rollout: Rollout, batches: int) -> Rollout:
    """(T, B * k, ...) -> (B, T, k, ...): column block b is batch b."""
    def split(x):
        t, n = x.shape[:2]
        x = x.reshape(t, batches, n // batches, *x.shape[2:])
        return jnp.moveaxis(x, 1, 0)
    return jax.tree.map(split, rollout)


# --------------------------------------------------------------------------------------------
# 2. The learned baselines: fit V(s) and V(s, t) to the fixed policy's Monte-Carlo returns
# --------------------------------------------------------------------------------------------

CRITICS = ("state", "state_time")  # V(s) and V(s, t): the baselines with a learned value net


def initial_value_params(model: REINFORCE, critic: str) -> dict:
    """The model's critic V(s); for V(s, t) the same net with a zero weight on the t input (the same function)."""
    value = model.learner.agent.params["value"]
    if critic == "state":
        return value
    first = value["params"]["Dense_0"]
    kernel = jnp.concatenate([first["kernel"], jnp.zeros_like(first["kernel"][:1])])  # one input row more: t
    return {"params": {**value["params"], "Dense_0": {**first, "kernel": kernel}}}


def fit_value(model: REINFORCE, fit_rollout: Rollout, cfg: VarianceBenchConfig, critic: str) -> dict:
    """Params whose value net (V(s) or V(s, t)) is regressed on Monte-Carlo returns (policy params untouched)."""
    params = dict(model.learner.agent.params, value=initial_value_params(model, critic))
    if cfg.fit_steps == 0:
        return params
    mc = benchmark_agent(model, "none")  # G_t to the episode's end, weight 1 on rows whose episode ended
    _, returns, weight, _ = _advantages(mc, model.learner.agent.params, fit_rollout)
    keep = np.flatnonzero(np.asarray(weight).reshape(-1) > 0)
    agent = benchmark_agent(model, critic)
    inputs = agent.value_inputs(fit_rollout.obs, fit_rollout.time_in_episode)
    inputs = inputs.reshape(-1, inputs.shape[-1])[keep]
    target = returns.reshape(-1)[keep]
    # regress the standardised return (V = mean + std * net), so that the fit does not depend on the
    # reward scale: Adam moves each weight by about fit_lr per step, and Pendulum's returns are ~ -360 ± 180
    mean, std = target.mean(), target.std() + 1e-8
    net = _fit_value(agent, cfg.fit_steps, min(cfg.fit_minibatch, len(keep)), cfg.fit_lr,
                     affine_output(params["value"], 1.0 / std, -mean / std), inputs, (target - mean) / std,
                     jax.random.PRNGKey(cfg.seed + 1))
    return dict(params, value=affine_output(net, std, mean))


def affine_output(value_params: dict, scale, shift) -> dict:
    """The params of scale * V + shift: V's output layer (its last Dense) rescaled."""
    layers = value_params["params"]
    last = f"Dense_{len(layers) - 1}"
    out = layers[last]
    return {"params": {**layers, last: {"kernel": out["kernel"] * scale, "bias": out["bias"] * scale + shift}}}


@functools.partial(jax.jit, static_argnums=0)
def _advantages(agent: REINFORCEAgent, params: dict, rollout: Rollout):
    return agent.advantages(params, rollout)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _fit_value(agent: REINFORCEAgent, steps: int, minibatch: int, lr: float, value_params, inputs, target, key):
    """`steps` Adam steps on mean (V - G)^2 over random minibatches of (value inputs, target)."""
    opt = optax.adam(lr)

    def step(carry, key):
        value_params, opt_state = carry
        i = jax.random.randint(key, (minibatch,), 0, inputs.shape[0])
        loss_fn = lambda vp: jnp.mean((agent.value({"value": vp}, inputs[i]) - target[i]) ** 2)  # noqa: E731
        grad = jax.grad(loss_fn)(value_params)
        updates, opt_state = opt.update(grad, opt_state)
        return (optax.apply_updates(value_params, updates), opt_state), None

    (value_params, _), _ = jax.lax.scan(step, (value_params, opt.init(value_params)), jax.random.split(key, steps))
    return value_params


# --------------------------------------------------------------------------------------------
# 3-4. The gradient estimates and their statistics
# --------------------------------------------------------------------------------------------


def value_explained_variance(model: REINFORCE, critic: str, fitted: dict, rollout: Rollout, returns: jax.Array,
                             keep: np.ndarray) -> dict[str, float]:
    """Explained variance of V(s) or V(s, t) for the returns of the rows marked `keep`, before and after the fit."""
    agent = benchmark_agent(model, critic)
    out = {}
    for tag, value_params in (("before_fit", initial_value_params(model, critic)), ("after_fit", fitted["value"])):
        value = agent.rollout_values(dict(fitted, value=value_params), rollout)[0]
        out[tag] = float(explained_variance(value.reshape(-1)[keep], returns.reshape(-1)[keep]))
    return out


def policy_gradient(agent: REINFORCEAgent, params: dict, rollout: Rollout) -> jax.Array:
    """g = grad_theta of REINFORCE's objective on one batch (flattened policy parameters)."""
    psi, returns, weight, _ = agent.advantages(params, rollout)
    grads = jax.grad(lambda p: agent.loss(p, rollout, psi, returns, weight)[0])(params)
    return -ravel_pytree(grads["policy"])[0]  # the loss is -objective


@functools.partial(jax.jit, static_argnums=0)
def _batch_gradients(agent: REINFORCEAgent, params: dict, batches: Rollout) -> jax.Array:
    return jax.vmap(lambda r: policy_gradient(agent, params, r))(batches)


def batch_gradients(agent: REINFORCEAgent, params: dict, batches: Rollout) -> np.ndarray:
    """(B, n_params): one gradient estimate per batch (batches: a Rollout with leading axis B)."""
    return np.asarray(_batch_gradients(agent, params, batches), np.float64)


def total_variance(g: np.ndarray) -> float:
    """tr Cov(g) = sum over parameters of the sample variance over batches (ddof 1)."""
    return float(np.sum(np.var(g, axis=0, ddof=1)))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def gradient_statistics(grads: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per baseline: tr Cov(g) and its ratio to "none", tr Cov(g) / ||mean g||^2 and its ratio to "none",
    ||mean g||, cos(mean g, mean g_none), and the paired shift/noise of the mean against "none"."""
    g0 = grads["none"]
    b, var0 = g0.shape[0], total_variance(g0)
    nsr0 = var0 / float(np.sum(g0.mean(0) ** 2))
    out = {}
    for name, g in grads.items():
        d = g - g0
        noise = np.sqrt(total_variance(d) / b) if name != "none" else 0.0
        nsr = total_variance(g) / float(np.sum(g.mean(0) ** 2))
        out[name] = {
            "total_variance": total_variance(g),
            "relative_variance": total_variance(g) / var0,
            "noise_to_signal": nsr,  # tr Cov(g) / ||mean g||^2: blind to a rescaled (shrunk) estimator
            "relative_noise_to_signal": nsr / nsr0,
            "mean_grad_norm": float(np.linalg.norm(g.mean(0))),
            "cos_mean_vs_none": _cosine(g.mean(0), g0.mean(0)),
            "mean_shift_vs_none": float(np.linalg.norm(d.mean(0))),
            "shift_over_noise": float(np.linalg.norm(d.mean(0)) / noise) if noise > 0 else float("nan"),
        }
    return out


def run(cfg: VarianceBenchConfig) -> dict[str, Any]:
    """The whole benchmark; returns a JSON-ready dict."""
    cfg.validate()
    t0 = time.perf_counter()
    model = fixed_policy(cfg)
    t_train = time.perf_counter() - t0
    k = cfg.envs_per_batch
    fit_rollout, _ = collect(model, cfg.env, max(2, cfg.fit_batches * k), cfg.batch_steps, 1_000_000 + cfg.seed)
    fitted = {critic: fit_value(model, fit_rollout, cfg, critic) for critic in CRITICS}
    rollout, episodes = collect(model, cfg.env, cfg.batches * k, cfg.batch_steps, 2_000_000 + cfg.seed)
    batches = split_batches(rollout, cfg.batches)
    t_collect = time.perf_counter() - t0 - t_train

    # the same policy parameters for every baseline; "state_time" reads its own value net V(s, t)
    grads = {name: batch_gradients(benchmark_agent(model, name), fitted[name if name in CRITICS else "state"], batches)
             for name in BASELINES}
    stats = gradient_statistics(grads)
    # how well each V predicts the Monte-Carlo returns of the benchmark's own rows (complete episodes)
    _, returns, weight, _ = _advantages(benchmark_agent(model, "none"), model.learner.agent.params, rollout)
    keep = np.asarray(weight).reshape(-1) > 0
    ev = {critic: value_explained_variance(model, critic, fitted[critic], rollout, returns, keep) for critic in CRITICS}
    n_params = int(next(iter(grads.values())).shape[1])
    return {
        "config": dataclasses.asdict(cfg),
        "policy": {"train_steps": model.num_timesteps, "n_policy_parameters": n_params,
                   "gamma": model.config.gamma, "hyperparameters": model.config.to_dict(), **episodes,
                   "rows_with_known_return": float(keep.mean()), "explained_variance": ev},
        "baselines": stats,
        "ordering_by_variance": sorted(stats, key=lambda n: -stats[n]["total_variance"]),
        "seconds": {"train_policy": round(t_train, 2), "collect_and_fit": round(t_collect, 2),
                    "total": round(time.perf_counter() - t0, 2)},
    }


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    c, p = result["config"], result["policy"]
    ev = p["explained_variance"]
    lines = [
        f"REINFORCE gradient variance on {c['env']}: {c['batches']} batches of {c['batch_steps']} steps x "
        f"{c['envs_per_batch']} env(s), fixed policy after {p['train_steps']} training steps "
        f"(episode return {p['episode_return_mean']:.1f} ± {p['episode_return_std']:.1f} over {p['episodes']} "
        f"episodes), {p['n_policy_parameters']} policy parameters, gamma {p['gamma']:g}; "
        f"explained variance before -> after the fit: V(s) {ev['state']['before_fit']:.2f} -> "
        f"{ev['state']['after_fit']:.2f}, V(s, t) {ev['state_time']['before_fit']:.2f} -> "
        f"{ev['state_time']['after_fit']:.2f}.",
        "",
        "| baseline | tr Cov(g) | relative to none | tr Cov(g) / ‖mean g‖² (relative) | ‖mean g‖ "
        "| cos(mean g, mean g_none) | shift/noise vs none |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in result["baselines"].items():
        shift = "—" if name == "none" else f"{s['shift_over_noise']:.2f}"
        lines.append(f"| {name} | {s['total_variance']:.4g} | {s['relative_variance']:.3f} | "
                     f"{s['noise_to_signal']:.3g} ({s['relative_noise_to_signal']:.3f}) | "
                     f"{s['mean_grad_norm']:.4g} | {s['cos_mean_vs_none']:.3f} | {shift} |")
    lines += ["", f"ordering (largest variance first): {' > '.join(result['ordering_by_variance'])}; "
                  f"{result['seconds']['total']:.0f} s in all"]
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    d = VarianceBenchConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_variance",
                                description="Variance of REINFORCE's gradient estimator per baseline "
                                            "at a fixed policy.")
    p.add_argument("--env", default=d.env, help=f"environment id (default: {d.env})")
    p.add_argument("--batches", type=int, default=d.batches, help=f"independent batches (default: {d.batches})")
    p.add_argument("--batch-steps", type=int, default=d.batch_steps, help=f"steps per batch (default: {d.batch_steps})")
    p.add_argument("--envs-per-batch", type=int, default=d.envs_per_batch,
                   help=f"envs per batch (default: {d.envs_per_batch})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed (default: {d.seed})")
    p.add_argument("--train-steps", type=int, default=d.train_steps,
                   help=f"training steps of the fixed policy, 0: the initial policy (default: {d.train_steps})")
    p.add_argument("--fit-batches", type=int, default=d.fit_batches,
                   help=f"separate batches for fitting V (default: {d.fit_batches})")
    p.add_argument("--fit-steps", type=int, default=d.fit_steps,
                   help=f"Adam steps fitting V, 0: the model's critic as is (default: {d.fit_steps})")
    p.add_argument("--markdown", action="store_true", help="print the markdown table")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="write DIR/variance.json and DIR/variance.md")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    cfg = VarianceBenchConfig(env=args.env, batches=args.batches, batch_steps=args.batch_steps,
                              envs_per_batch=args.envs_per_batch, seed=args.seed, train_steps=args.train_steps,
                              fit_batches=args.fit_batches, fit_steps=args.fit_steps)
    try:
        cfg.validate()
    except ValueError as e:
        raise SystemExit(f"benchmarks.bench_variance: {e}") from None
    result = run(cfg)
    text = markdown(result)
    if args.markdown:
        print(text)
    else:
        for name, s in result["baselines"].items():
            print(f"{name:9s} tr Cov(g) {s['total_variance']:.4g}  relative {s['relative_variance']:.3f}  "
                  f"|mean g| {s['mean_grad_norm']:.4g}  cos vs none {s['cos_mean_vs_none']:.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "variance.json").write_text(json.dumps(result, indent=2))
        (args.out / "variance.md").write_text(text + "\n")
        print(f"wrote {args.out / 'variance.json'} and {args.out / 'variance.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
