"""Deterministic evaluation of a trained policy on fresh, seeded episodes, and of its critic's bias
(`evaluate_q_bias`: the predicted Q(s_t, a_t) against the discounted return actually obtained)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from polyak.core.normalizer import rms_normalize
from polyak.envs.spaces import make_env


def evaluate_policy(model: Any, env: Any, n_eval_episodes: int = 10, deterministic: bool = True,
                    seed: int = 0, return_episode_rewards: bool = False):
    """Run `n_eval_episodes` episodes (reset seeds seed, seed+1, ...) with the frozen normaliser.

    Returns (mean, std) of the episode returns, or (returns, lengths) with return_episode_rewards.
    """
    if n_eval_episodes < 1:
        raise ValueError(f"n_eval_episodes must be >= 1, got {n_eval_episodes}")
    env = make_env(env)
    returns, lengths = [], []
    for episode in range(n_eval_episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total, length = False, 0.0, 0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    if return_episode_rewards:
        return returns, lengths
    return float(np.mean(returns)), float(np.std(returns))


# -- critic bias: Q(s_t, a_t) against the discounted Monte-Carlo return -------------------------
DEFAULT_MAX_TAIL_WEIGHT = 0.25
ENTROPY_SAMPLES = 256


def discounted_returns(rewards, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """G_t = sum_{k=0}^{T-t-1} gamma^k r_{t+k} + gamma^(T-t) * bootstrap, for t = 0..T-1.

    `bootstrap` is the value after the last reward: 0 when the episode terminated, an estimate of
    V(s_T) when it was cut off by a time limit.
    """
    rewards = np.asarray(rewards, np.float64)
    out = np.empty(len(rewards))
    g = float(bootstrap)
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


@functools.lru_cache(maxsize=16)
def _entropy_fn(agent: Any, n_samples: int):
    """Jitted H(pi(.|s)) of raw observations (the agent's `policy_entropy`), with the frozen normaliser."""
    def entropy(agent_state, obs_rms, obs, key):
        obs = rms_normalize(obs_rms, obs, enabled=agent.cfg.normalize_obs)
        return agent.policy_entropy(agent_state, obs, key, n_samples)

    return jax.jit(entropy)


def _bias_stats(q: np.ndarray, g: np.ndarray, q0: np.ndarray, g0: np.ndarray) -> dict[str, float]:
    nan = float("nan")
    d, d0 = q - g, q0 - g0
    return {
        "bias_mean": float(d.mean()) if d.size else nan,
        "bias_median": float(np.median(d)) if d.size else nan,
        "bias_std": float(d.std()) if d.size else nan,
        "bias_normalized": float(d.mean() / np.abs(g).mean()) if d.size and np.abs(g).mean() > 0 else nan,
        "bias_t0": float(d0.mean()),
        "bias_normalized_t0": float(d0.mean() / np.abs(g0).mean()) if np.abs(g0).mean() > 0 else nan,
        "q_mean": float(q.mean()) if q.size else nan, "return_mean": float(g.mean()) if g.size else nan,
        "q_t0": float(q0.mean()), "return_t0": float(g0.mean()),
    }


def evaluate_q_bias(model: Any, env: Any, n_episodes: int = 10, seed: int = 0, gamma: float | None = None,
                    every: int = 1, max_tail_weight: float = DEFAULT_MAX_TAIL_WEIGHT) -> dict[str, Any]:
    """How far the critic's Q(s_t, a_t) is from the discounted return actually obtained from s_t.

    Runs `n_episodes` deterministic episodes (reset seeds seed, seed+1, ..., as evaluate_policy)
    and, at every `every`-th step t (t = 0 always), compares the critic's estimate for the action
    taken, ``model.predict_q(s_t, a_t)``, with the Monte-Carlo return
    G_t = sum_k gamma^k r_{t+k} (gamma: the model's unless given).

    Episode ends: after a *termination* the return is 0, so G_t is exact. After a *time-limit
    truncation* at step T the tail is unobserved; like the critic's own training target, G_t
    bootstraps it with the critic's estimate at the true final observation, gamma^(T-t) Q(s_T, mu(s_T))
    (same critic statistic as the Q it is compared with). Only states whose tail weight
    gamma^(T-t) is at most `max_tail_weight` enter the averages, so at least 1 - max_tail_weight of
    every G_t is observed reward (with gamma = 0.99 and 200-step episodes: t <= 62). If the critic
    is off by b everywhere, the measured bias is b (1 - gamma^(T-t)) >= 0.75 b. The t = 0 bias is
    reported for every episode, with its mean tail weight (``tail_weight_t0``).

    Critic statistics (``critics``): ``min`` over the ensemble (the value TD3's and SAC's targets use,
    DDPG's single critic; the top-level numbers), ``mean`` over the ensemble and, for deterministic
    actors (TD3/DDPG), ``q1``, the critic the actor is trained on.

    A maximum-entropy agent's critic (SAC's: the agent has an `entropy_temperature`) estimates the
    *soft* value, which also holds the entropy bonus of later states,
    Q_soft(s_t, a_t) = E[sum_k gamma^k r_{t+k} + sum_{k>=1} gamma^k alpha H(pi(.|s_{t+k}))]. The plain
    numbers compare it with the reward return. ``soft`` adds, along the same deterministic states,
    the bonus the soft Bellman target adds, gamma alpha H(pi(.|s_{t+1})) per step, with H a Monte-Carlo
    estimate of the policy's entropy at each visited state (-mean log pi(a|s) over sampled a ~ pi(.|s)).
    -alpha log pi(a_det|s) at the deterministic (mean) action is not that bonus: it is the density at
    the mode, not its expectation. ``soft.alpha_entropy`` = alpha * mean H, the bonus per step.

    Biases are Q - G in the env's reward units: mean, median, std over the states used, ``bias_t0``
    (mean over episodes at t = 0) and ``bias_normalized`` = mean(Q - G) / mean(|G|) (a ratio of means:
    per-state ratios blow up where G is near 0, e.g. a Pendulum held upright).
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    gamma = float(model.config.gamma if gamma is None else gamma)
    env = make_env(env)
    temperature = model.agent.entropy_temperature(model.learner.agent)
    soft = temperature is not None
    names = ["min", "mean"] + ([] if soft else ["q1"])

    def stats_of(q: np.ndarray) -> dict[str, np.ndarray]:
        out = {"min": q.min(axis=-1), "mean": q.mean(axis=-1)}
        if not soft:
            out["q1"] = q[..., 0]
        return out

    if soft:
        alpha = float(temperature)
        entropy_fn = _entropy_fn(model.agent, ENTROPY_SAMPLES)
        entropy_key = jax.random.PRNGKey(seed)
    parts: dict[str, dict[str, list]] = {n: {"q": [], "g": [], "q0": [], "g0": []} for n in names + ["soft"]}
    tail_t0, n_truncated, n_terminated, entropies = [], 0, 0, []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        observations, actions, rewards = [], [], []
        terminated = truncated = False
        while not (terminated or truncated):
            action, _ = model.predict(obs, deterministic=True)
            observations.append(np.asarray(obs, np.float32))
            actions.append(np.asarray(action, np.float32))
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
        T = len(rewards)
        n_terminated += bool(terminated)
        n_truncated += bool(truncated and not terminated)
        q = stats_of(model.predict_q(np.stack(observations), np.stack(actions)))
        if terminated:
            tail = {n: 0.0 for n in names}
            weight = np.zeros(T)
        else:  # cut off by the time limit: bootstrap with the critic at the true final observation
            final_action, _ = model.predict(obs, deterministic=True)
            tail = {n: float(v) for n, v in stats_of(model.predict_q(obs, final_action)).items()}
            weight = gamma ** (T - np.arange(T, dtype=np.float64))
        t = np.arange(T)
        used = (t % every == 0) & (weight <= max_tail_weight)
        tail_t0.append(float(weight[0]))
        for n in names:
            g = discounted_returns(rewards, gamma, tail[n])
            parts[n]["q"].append(q[n][used]), parts[n]["g"].append(g[used])
            parts[n]["q0"].append(q[n][0]), parts[n]["g0"].append(g[0])
        if soft:
            # H(pi(.|s_1)) ... H(pi(.|s_T)); no bonus after a termination
            entropy_key, key = jax.random.split(entropy_key)
            next_obs = np.stack(observations[1:] + [np.asarray(obs, np.float32)])
            h = np.asarray(entropy_fn(model.learner.agent, model.learner.obs_rms, next_obs, key), np.float64)
            if terminated:
                h[-1] = 0.0
            entropies.append(h[:-1] if terminated else h)
            g = discounted_returns(np.asarray(rewards) + gamma * alpha * h, gamma, tail["min"])
            parts["soft"]["q"].append(q["min"][used]), parts["soft"]["g"].append(g[used])
            parts["soft"]["q0"].append(q["min"][0]), parts["soft"]["g0"].append(g[0])

    def summary(n: str) -> dict[str, float]:
        p = {k: np.concatenate(v) if k in ("q", "g") else np.asarray(v) for k, v in parts[n].items()}
        return _bias_stats(p["q"], p["g"], p["q0"], p["g0"])

    critics = {n: summary(n) for n in names}
    result: dict[str, Any] = {
        "estimate": "min", **critics["min"],
        "n_states": int(sum(len(x) for x in parts["min"]["q"])), "n_episodes": n_episodes,
        "terminated_episodes": n_terminated, "truncated_episodes": n_truncated,
        "gamma": gamma, "every": every, "max_tail_weight": max_tail_weight,
        "tail_weight_t0": float(np.mean(tail_t0)),
        "boundary": ("terminated: G = 0 after the end; truncated: tail bootstrapped with the critic's own "
                     "gamma^(T-t) Q(s_T, mu(s_T)); averages over states with gamma^(T-t) <= max_tail_weight"),
        "critics": critics,
    }
    if soft:
        h = np.concatenate(entropies) if entropies else np.zeros(0)
        entropy = float(h.mean()) if h.size else float("nan")
        result["soft"] = {
            **summary("soft"), "alpha": alpha, "entropy_mean": entropy, "alpha_entropy": alpha * entropy,
            "alpha_entropy_discounted": alpha * entropy * gamma / (1.0 - gamma) if gamma < 1 else float("nan"),
            "note": ("SAC's critic estimates the soft value; soft.* compare it with the return plus the entropy "
                     "bonus gamma*alpha*H(pi(.|s_{t+1})) per step (H: Monte-Carlo entropy at the visited states)"),
        }
    return result
