"""Small scripted environments for tests."""

import gymnasium as gym
import numpy as np


class CountingEnv(gym.Env):
    """obs = [t, episode_marker]; the episode ends after `length` steps, by termination or by a time limit.

    reward = t + 1 (the step number just taken), so transitions are easy to identify.
    """

    def __init__(self, length=5, terminate=True, action_dim=1, reward_fn=None, obs_fn=None):
        self.length, self.terminate = length, terminate
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (action_dim,), np.float32)
        self.reward_fn, self.obs_fn = reward_fn, obs_fn
        self.total_steps = 0

    def _obs(self):
        obs = np.array([self.t, 100.0 + self.episode], np.float32)
        return self.obs_fn(self.total_steps, obs) if self.obs_fn else obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.episode = getattr(self, "episode", -1) + 1
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, np.float32)), action
        self.t += 1
        self.total_steps += 1
        reward = float(self.t) if self.reward_fn is None else self.reward_fn(self.total_steps)
        end = self.t >= self.length
        return self._obs(), reward, end and self.terminate, end and not self.terminate, {}


class DiscreteActionEnv(CountingEnv):
    def __init__(self):
        super().__init__()
        self.action_space = gym.spaces.Discrete(3)


class ScriptedJaxEnv:
    """A JAX env with scripted boundaries: obs = (c, t, a); c starts at a key-dependent 0..3 and counts up.

    reward = c; terminated when c reaches 6 (mod 7), truncated after 5 steps; a = the last action,
    so a stored transition shows which action led to it.
    """

    def __init__(self):
        import jax.numpy as jnp

        self.default_params = jnp.int32(5)  # the time limit
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, key, params):
        import jax
        import jax.numpy as jnp

        c = jax.random.randint(key, (), 0, 4)
        state = (c, jnp.int32(0))
        return state, jnp.stack([c, 0, 0]).astype(jnp.float32)

    def step(self, key, state, action, params):
        import jax.numpy as jnp

        c, t = state[0] + 1, state[1] + 1
        obs = jnp.stack([c.astype(jnp.float32), t.astype(jnp.float32), action[0]])
        return (c, t), obs, c.astype(jnp.float32), c % 7 == 6, t >= params, {}
