"""World models on logged Pendulum data: multi-step prediction error and whether the uncertainty knows it.

Run it as ``python -m benchmarks.world_models`` (``--help`` lists the options). Steps:

1. Log ``--episodes`` episodes of Gymnasium ``Pendulum-v1`` under a behaviour policy that an archive
   would hold (uniform random torques); hold out a fifth of them.
2. Fit the stable Koopman ensemble (``polyak.core.koopman``) and the probabilistic MLP ensemble
   (``polyak.core.dynamics``) on the rest.
3. On held-out episodes (in distribution) and on episodes of an energy-pumping controller,
   a = 2 sign(theta_dot), which swings the pendulum far faster than random torques do (out of
   distribution), measure the open-loop RMS error of the predicted observation after 1, 5, 20 and 50
   steps (from each episode's first state, under its logged actions), and the Spearman correlation of
   each model's one-step epistemic uncertainty (its members' disagreement) with its one-step error,
   within each set and pooled, plus the ratio of median uncertainty out vs in distribution.

Prints a markdown table; ``--out FILE`` writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import spearmanr

from polyak.core.dynamics import DynamicsEnsemble
from polyak.core.koopman import KoopmanEnsemble, make_segments

HORIZONS = (1, 5, 20, 50)


def log_episodes(n: int, policy: str, seed: int, length: int = 200) -> list[dict[str, np.ndarray]]:
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        obs, _ = env.reset(seed=seed * 100_000 + i)
        o, a, r = [obs], [], []
        for _ in range(length):
            if policy == "random":
                action = rng.uniform(-2, 2, 1).astype(np.float32)
            else:  # energy pumping: torque along the angular velocity
                action = np.array([2.0 * np.sign(o[-1][2] + 1e-3)], np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            o.append(obs)
            a.append(action)
            r.append(reward)
            if terminated or truncated:
                break
        episodes.append({"observations": np.asarray(o, np.float32), "actions": np.asarray(a, np.float32),
                         "rewards": np.asarray(r, np.float32)})
    return episodes


def transitions(episodes):
    return (np.concatenate([e["observations"][:-1] for e in episodes]), np.concatenate([e["actions"] for e in episodes]),
            np.concatenate([e["rewards"] for e in episodes]), np.concatenate([e["observations"][1:] for e in episodes]))


def ensemble_rollout(model: DynamicsEnsemble, state, obs0, actions, key):
    """Open-loop mean prediction of the MLP ensemble: each step from the elites' mean next state."""
    preds, obs = [], jnp.asarray(obs0)
    for t in range(actions.shape[1]):
        mean, _ = model.predict(state, obs, jnp.asarray(actions[:, t]))
        obs = obs + mean[state.elites, :, :-1].mean(axis=0)
        preds.append(obs)
    return np.stack([np.asarray(p) for p in preds], axis=1)


def horizon_errors(pred, episodes, horizons):
    truth = np.stack([e["observations"][1:] for e in episodes])
    return {h: float(np.sqrt(((pred[:, h - 1] - truth[:, h - 1]) ** 2).mean())) for h in horizons}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.world_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="logged random-policy episodes (default 100)")
    parser.add_argument("--steps", type=int, default=3000, help="gradient steps per model (default 3000)")
    parser.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    parser.add_argument("--horizon", type=int, default=KoopmanEnsemble.horizon,
                        help=f"Koopman training rollout length H (default {KoopmanEnsemble.horizon})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the numbers as JSON")
    args = parser.parse_args(argv)

    data = log_episodes(args.episodes, "random", args.seed)
    n_val = max(2, args.episodes // 5)
    train, held_out = data[n_val:], data[:n_val]
    ood = log_episodes(n_val, "pump", args.seed + 1)
    key = jax.random.PRNGKey(args.seed)

    t0 = time.perf_counter()
    koopman = KoopmanEnsemble(3, 1, n_members=args.members, horizon=args.horizon)
    k_state, _ = koopman.fit(key, make_segments(train, koopman.horizon), n_steps=args.steps)
    koopman_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mlp = DynamicsEnsemble(3, 1, n_members=args.members, n_elites=max(1, args.members - 2))
    m_state, _ = mlp.fit(key, transitions(train), n_steps=args.steps)
    mlp_s = time.perf_counter() - t0

    results = {"fit_s": {"koopman": koopman_s, "mlp_ensemble": mlp_s}, "errors": {}, "uncertainty": {}}
    for name, episodes in (("in distribution", held_out), ("out of distribution", ood)):
        obs0 = np.stack([e["observations"][0] for e in episodes])
        actions = np.stack([e["actions"] for e in episodes])
        k_pred = np.asarray(koopman.rollout(k_state, jnp.asarray(obs0), jnp.asarray(actions))[0]).mean(axis=0)
        m_pred = ensemble_rollout(mlp, m_state, obs0, actions, key)
        results["errors"][name] = {"koopman": horizon_errors(k_pred, episodes, HORIZONS),
                                   "mlp_ensemble": horizon_errors(m_pred, episodes, HORIZONS)}
        s, a, _, s2 = transitions(episodes)
        k_next, _, k_unc = koopman.step(k_state, jnp.asarray(s), jnp.asarray(a), key)
        k_mean = np.asarray(koopman.rollout(k_state, jnp.asarray(s), jnp.asarray(a)[:, None])[0]).mean(0)[:, 0]
        m_mean, _ = mlp.predict(m_state, jnp.asarray(s), jnp.asarray(a))
        m_next = s + np.asarray(m_mean[m_state.elites, :, :-1].mean(axis=0))
        _, _, _, m_unc = mlp.step(m_state, jnp.asarray(s), jnp.asarray(a), key)
        results["uncertainty"][name] = {
            "koopman": {"error": np.linalg.norm(k_mean - s2, axis=-1), "uncertainty": np.asarray(k_unc)},
            "mlp_ensemble": {"error": np.linalg.norm(m_next - s2, axis=-1), "uncertainty": np.asarray(m_unc)}}

    table = ["| model | set | " + " | ".join(f"RMS error {h} steps" for h in HORIZONS) + " |",
             "|---|---|" + "---|" * len(HORIZONS)]
    for name in ("in distribution", "out of distribution"):
        for model in ("koopman", "mlp_ensemble"):
            e = results["errors"][name][model]
            table.append(f"| {model} | {name} | " + " | ".join(f"{e[h]:.3f}" for h in HORIZONS) + " |")
    table += ["", "| model | Spearman(uncertainty, one-step error) in / out / pooled | median uncertainty out / in |",
              "|---|---|---|"]
    summary = {}
    for model in ("koopman", "mlp_ensemble"):
        i, o = results["uncertainty"]["in distribution"][model], results["uncertainty"]["out of distribution"][model]
        rho = [spearmanr(x["uncertainty"], x["error"]).statistic for x in (i, o)]
        pooled = spearmanr(np.concatenate([i["uncertainty"], o["uncertainty"]]),
                           np.concatenate([i["error"], o["error"]])).statistic
        ratio = float(np.median(o["uncertainty"]) / np.median(i["uncertainty"]))
        summary[model] = {"spearman_in": float(rho[0]), "spearman_out": float(rho[1]), "spearman_pooled": float(pooled),
                          "median_uncertainty_ratio": ratio}
        table.append(f"| {model} | {rho[0]:.2f} / {rho[1]:.2f} / {pooled:.2f} | {ratio:.1f}× |")
    print("\n".join(table))
    print(f"\n{len(train)} training episodes ({sum(len(e['actions']) for e in train)} transitions), {n_val} held out, "
          f"{n_val} energy-pumping; {args.steps} gradient steps; fit time Koopman {koopman_s:.0f} s, "
          f"MLP ensemble {mlp_s:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "errors": results["errors"], "uncertainty": summary,
                       "fit_s": results["fit_s"]}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
