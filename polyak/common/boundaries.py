"""Episode boundaries, in one place.

A transition carries `terminated` and `truncated` separately:
  * terminated: the MDP reached a terminal state; the target does not bootstrap (mask 0);
  * truncated:  a time limit cut the episode; the target bootstraps from the *true* final
    observation, which is what we store as next_obs (never the auto-reset observation).

Two steppers present any environment as n parallel copies with the same interface:
  * `SingleEnvStepper` drives one `gymnasium.Env` itself: each episode is reset with a seed derived
    from (seed, episode index), and the actions of the running episode are recorded, so a
    checkpoint can restore the environment mid-episode exactly by replaying them.
  * `VectorEnvStepper` wraps a Gymnasium vector env in its SAME_STEP or NEXT_STEP autoreset mode.
`jax_envs_step` is the same SAME_STEP logic for a batch of JAX environments, as a pure function:
the Gymnasium vector adapter of a JAX env and the fully jitted training loop both call it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np


class StepBatch(NamedTuple):
    """What one environment step yields for the learner (leading dimension n_envs)."""

    next_obs: np.ndarray  # the true next observation of each transition
    reward: np.ndarray
    terminated: np.ndarray  # bool: stop bootstrapping
    truncated: np.ndarray  # bool: time limit; bootstrap from next_obs
    valid: np.ndarray  # bool: False for the reset step of NEXT_STEP vector envs (not a transition)
    obs: np.ndarray  # the observation to act on next (the reset observation after an episode end)
    episode_start: np.ndarray  # bool: `obs` begins a new episode


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


class SingleEnvStepper:
    n_envs = 1

    def __init__(self, env: gym.Env, seed: int, env_index: int = 0):
        self.env, self.seed = env, int(seed)
        self.env_index = int(env_index)  # distinct reset seeds for several single envs (A3C's workers)
        self.episode = 0
        self.episode_actions: list[np.ndarray] = []  # env-space actions of the running episode

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.seed, self.env_index, self.episode))
        self.episode_actions = []
        return np.asarray(obs, np.float32)[None]

    def step(self, env_action: np.ndarray) -> StepBatch:
        action = env_action[0]
        self.episode_actions.append(action)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        next_obs = np.asarray(next_obs, np.float32)[None]
        done = terminated or truncated
        if done:
            self.episode += 1
            obs = self.reset()
        else:
            obs = next_obs
        return StepBatch(next_obs, np.asarray([reward], np.float32), np.asarray([terminated]),
                         np.asarray([truncated]), np.ones(1, bool), obs, np.asarray([done]))

    def restore(self, episode: int, episode_actions: np.ndarray) -> np.ndarray:
        """Reset to the start of `episode` and replay its recorded actions; returns the observation."""
        self.episode = int(episode)
        obs = self.reset()
        for action in episode_actions:
            self.episode_actions.append(action)
            next_obs, _, terminated, truncated, _ = self.env.step(action)
            if terminated or truncated:
                raise RuntimeError("replaying the checkpointed episode ended it early: the environment is not "
                                   "deterministic given its reset seed and actions, so it cannot be resumed exactly")
            obs = np.asarray(next_obs, np.float32)[None]
        return obs


class VectorEnvStepper:
    def __init__(self, env: gym.vector.VectorEnv, seed: int):
        self.env, self.seed = env, int(seed)
        self.n_envs = env.num_envs
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        mode = gym.vector.AutoresetMode(mode) if isinstance(mode, str) else mode
        if mode not in (gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP):
            raise ValueError(f"vector env autoreset mode {mode} is not supported; use NEXT_STEP or SAME_STEP")
        self.same_step = mode == gym.vector.AutoresetMode.SAME_STEP
        self.episode = 0
        self.episode_actions: list[np.ndarray] = []
        self._pending_reset = np.zeros(self.n_envs, bool)

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self.seed)
        self._pending_reset[:] = False
        return np.asarray(obs, np.float32)

    def step(self, env_action: np.ndarray) -> StepBatch:
        obs, reward, terminated, truncated, info = self.env.step(env_action)
        obs = np.asarray(obs, np.float32)
        done = np.logical_or(terminated, truncated)
        if self.same_step:
            next_obs = obs.copy()
            if done.any():  # the returned obs are reset observations: fetch the true final ones
                mask = info.get("_final_obs", done)
                for i in np.flatnonzero(mask):
                    next_obs[i] = info["final_obs"][i]
            valid = np.ones(self.n_envs, bool)
            episode_start = done
        else:  # NEXT_STEP: a step after `done` only resets that env; it is not a transition
            next_obs = obs
            valid = ~self._pending_reset
            episode_start = self._pending_reset.copy()
            self._pending_reset = done.copy()
            # after `done`, the next call resets; the observation to act on is still obs (ignored action)
        return StepBatch(next_obs, np.asarray(reward, np.float32), np.asarray(terminated, bool),
                         np.asarray(truncated, bool), valid, obs, episode_start)


def jax_envs_step(env, params, key, states, env_actions):
    """Step a batch of JAX envs (`polyak.envs.JaxEnv`) once, resetting those that end (SAME_STEP).

    Returns (key, states, StepBatch, info): `StepBatch.next_obs` is the true final observation of
    each transition, `StepBatch.obs` the observation to act on next (a reset one where the episode
    ended). Pure and jittable; `info` is the env's info from the step taken, before any reset.
    """
    import jax
    import jax.numpy as jnp

    n = env_actions.shape[0]
    key, step_key, reset_key = jax.random.split(key, 3)
    states, final_obs, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
        jax.random.split(step_key, n), states, env_actions, params)
    done = terminated | truncated
    fresh_states, fresh_obs = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, n), params)

    def pick(fresh, old):
        return jnp.where(done.reshape(done.shape + (1,) * (old.ndim - 1)), fresh, old)

    states = jax.tree.map(pick, fresh_states, states)
    batch = StepBatch(final_obs, reward, terminated, truncated, jnp.ones(n, bool), pick(fresh_obs, final_obs), done)
    return key, states, batch, info


def jax_envs_reset(env, params, key, n: int):
    """Reset a batch of n JAX envs from one key, as `GymnasiumVectorAdapter.reset(seed)` does."""
    import jax

    key, sub = jax.random.split(key)
    states, obs = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(sub, n), params)
    return key, states, obs


def bootstrap_target(reward, terminated, gamma: float, next_value):
    """y = r + gamma (1 - terminated) V(s'): no bootstrap after termination; after truncation
    s' is the true final observation and we bootstrap from it. For n-step rows (`nstep_push`)
    r is the discounted k-step sum, s' the observation k steps later and `gamma` the per-row gamma^k."""
    return reward + gamma * (1.0 - terminated) * next_value


# --------------------------------------------------------------------------------------------
# n-step returns for replay buffers: a small window per env, before rows are written.
# --------------------------------------------------------------------------------------------


class NStepWindow(NamedTuple):
    """The last n one-step transitions of each env (oldest first, slot n-1 the newest), not yet
    complete as n-step rows. Leading dimensions (n_envs, n); lives in the learner and is saved with it."""

    obs: Any  # (n_envs, n, obs_dim)
    action: Any  # (n_envs, n, act_dim)
    reward: Any  # (n_envs, n)
    count: Any  # (n_envs,) int32: how many of the newest slots belong to the running episode


def nstep_init(n_envs: int, n: int, obs_dim: int, act_dim: int) -> NStepWindow:
    import jax.numpy as jnp

    return NStepWindow(jnp.zeros((n_envs, n, obs_dim)), jnp.zeros((n_envs, n, act_dim)), jnp.zeros((n_envs, n)),
                       jnp.zeros((n_envs,), jnp.int32))


def nstep_push(window: NStepWindow, rows, truncated, valid, gamma: float):
    """Add one step of one-step transitions (a `Transition` per env) and return the n-step rows it completes.

    Slot i of the window, after the push, starts a row that sums the rewards of slots i..n-1:
        G_i = sum_{j=i}^{n-1} gamma^(j-i) r_j,   next_obs = s' of the newest step,   discount = gamma^(n-i).
    A row is written when it holds n rewards (slot 0 of a full window), or when the episode ends at
    this step, which flushes every slot of the episode:
      * termination: the sum stops there and `terminated` = 1, so the target does not bootstrap;
      * time-limit truncation: the sum stops there and the target bootstraps from the true final
        observation with gamma^k, k < n the rewards summed.
    Rows with valid=False (the reset step of NEXT_STEP vector envs) leave the window unchanged.

    Returns (window, out, out_valid): `out` an `NStepTransition` of n_envs * n candidate rows (env by
    env, oldest first), `out_valid` which of them to write. Pure and jittable.
    """
    import jax
    import jax.numpy as jnp

    from polyak.common.buffer import NStepTransition

    n = window.reward.shape[1]
    slot = np.arange(n)
    power = slot[None, :] - slot[:, None]  # j - i
    weights = jnp.asarray(np.where(power >= 0, float(gamma) ** np.maximum(power, 0), 0.0), jnp.float32)
    discount = jnp.asarray(float(gamma) ** (n - slot), jnp.float32)

    def push_one(w: NStepWindow, row, truncated, valid):
        shift = lambda old, new: jnp.concatenate([old[1:], new[None].astype(old.dtype)])  # noqa: E731
        obs, action, reward = shift(w.obs, row.obs), shift(w.action, row.action), shift(w.reward, row.reward)
        count = jnp.minimum(w.count + 1, n)
        returns = jnp.sum(weights * reward[None, :], axis=1)  # G_i (elementwise: exact float32 on any device)
        terminated = row.terminated > 0
        done = terminated | (truncated > 0)
        in_episode = slot >= n - count
        emit = (valid > 0) & in_episode & (done | ((slot == 0) & (count == n)))
        out = NStepTransition(obs, action, returns, jnp.broadcast_to(row.next_obs, obs.shape),
                              jnp.broadcast_to(row.terminated, (n,)).astype(returns.dtype), discount)
        keep = valid > 0
        new = NStepWindow(obs, action, reward, jnp.where(done, 0, count).astype(jnp.int32))
        w = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, w)
        return w, out, emit

    window, out, emit = jax.vmap(push_one)(window, rows, truncated, valid)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    return window, jax.tree.map(flat, out), flat(emit)


def nstep_clear(window: NStepWindow) -> NStepWindow:
    """Forget the pending steps (the environments start new episodes)."""
    return window._replace(count=window.count * 0)


# --------------------------------------------------------------------------------------------
# Advantages and returns over a rollout (on-policy methods). Arrays have shape (T, n_envs);
# row t holds the transition (s_t, a_t, r_t, s'_t), s'_t the *true* next observation.
# --------------------------------------------------------------------------------------------


def gae_advantages(reward, value, next_value, terminated, episode_end, gamma: float, lam: float):
    """Generalised advantage estimation, GAE(gamma, lambda), over a (T, n_envs) rollout.

        delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t)
        A_t     = delta_t + gamma lambda (1 - end_t) A_{t+1},      A_T = 0

    `next_value` is V of the true next observation, so a time-limit cut (end_t without
    terminated_t) bootstraps from the final observation, a termination does not, and the recursion
    never crosses an episode boundary. The last row bootstraps from V(s'_{T-1}) (the rollout cut).
    lambda = 1 gives Monte-Carlo advantages G_t - V(s_t) (bootstrapped at cuts); lambda = 0 the
    one-step TD error. Returns (advantages, returns = advantages + value), both (T, n_envs).
    """
    import jax
    import jax.numpy as jnp

    delta = bootstrap_target(reward, terminated, gamma, next_value) - value
    not_end = 1.0 - episode_end.astype(delta.dtype)

    def backward(next_advantage, x):
        delta_t, not_end_t = x
        advantage = delta_t + gamma * lam * not_end_t * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(delta[0]), (delta, not_end), reverse=True)
    return advantages, advantages + value


def reward_to_go(reward, terminated, episode_end, gamma: float, cut_value=None):
    """Discounted reward-to-go G_t = r_t + gamma (1 - end_t) G_{t+1} over a (T, n_envs) rollout.

    At a cut that is not a termination (a time limit, or the rollout's last row) the sum is
    bootstrapped with `cut_value` (V of the true next observation), or stops there when
    `cut_value` is None (REINFORCE without a critic: the cut tail is then treated as an episode
    end; `complete_episodes` marks the rows whose episode ended inside the rollout).
    """
    import jax.numpy as jnp

    last_row = jnp.zeros_like(reward, dtype=bool).at[-1].set(True)
    cut = (episode_end.astype(bool) | last_row) & ~terminated.astype(bool)
    bootstrap = jnp.zeros_like(reward) if cut_value is None else jnp.where(cut, cut_value, 0.0)
    # GAE with V = 0 inside episodes and lambda = 1 is exactly the discounted sum.
    returns, _ = gae_advantages(reward, jnp.zeros_like(reward), bootstrap, terminated, episode_end, gamma, 1.0)
    return returns


def complete_episodes(episode_end):
    """(T, n_envs) bool: row t's episode ends at some row >= t of the same env inside the rollout."""
    import jax
    import jax.numpy as jnp

    def backward(later_end, end_t):
        complete = end_t | later_end
        return complete, complete

    _, complete = jax.lax.scan(backward, jnp.zeros_like(episode_end[0], dtype=bool), episode_end.astype(bool),
                               reverse=True)
    return complete
