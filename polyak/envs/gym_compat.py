"""Gymnasium 0.29.1 … 1.x: the one place that knows which version is installed.

polyak supports ``gymnasium>=0.29.1,<1.5``. The two lines differ in their vector envs:

* 1.x: a vector env declares its auto-reset in ``metadata["autoreset_mode"]`` (a
  ``gymnasium.vector.AutoresetMode``). ``NEXT_STEP`` (the default) resets an env on the call after it
  ended; ``SAME_STEP`` resets it in the same call and puts the true final observation in
  ``info["final_obs"]`` (mask ``info["_final_obs"]``). ``gymnasium.make_vec`` builds either.
* 0.29: ``gymnasium.vector.SyncVectorEnv`` / ``AsyncVectorEnv`` always reset in the same call and put
  the final observation in ``info["final_observation"]`` (mask ``info["_final_observation"]``);
  ``AutoresetMode`` does not exist, and ``make_vec`` is experimental (it builds
  ``gymnasium.experimental.vector`` envs, which are not ``gymnasium.vector.VectorEnv``, and does not
  pass the env's kwargs to a vector entry point).

Everything else polyak uses (``make``, ``register(vector_entry_point=...)``, ``spec``, spaces,
``env.unwrapped``, the wrappers it names) is the same in both. Code elsewhere reads the names below
and never asks Gymnasium what it has.
"""

from __future__ import annotations

import copy
import enum
import re
from typing import Any

import gymnasium as gym

GYMNASIUM_VERSION: tuple[int, int] = tuple(int(p) for p in re.match(r"(\d+)\.(\d+)", gym.__version__).groups())
GYMNASIUM_1 = GYMNASIUM_VERSION >= (1, 0)

if GYMNASIUM_1:
    AutoresetMode = gym.vector.AutoresetMode
    FINAL_OBS, FINAL_OBS_MASK = "final_obs", "_final_obs"
else:
    class AutoresetMode(enum.Enum):
        """1.x's `gymnasium.vector.AutoresetMode`, for 0.29 (whose vector envs are all SAME_STEP)."""

        NEXT_STEP = "NextStep"
        SAME_STEP = "SameStep"
        DISABLED = "Disabled"

    FINAL_OBS, FINAL_OBS_MASK = "final_observation", "_final_observation"

#: `metadata` of a vector env that resets in the same step (polyak's `GymnasiumVectorAdapter`)
SAME_STEP_METADATA: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

#: how a user builds a SAME_STEP vector env of Gymnasium's own ids, for error messages
SAME_STEP_HINT = ("gymnasium.make_vec(id, n, vector_kwargs={'autoreset_mode': "
                  "gymnasium.vector.AutoresetMode.SAME_STEP})" if GYMNASIUM_1
                  else "gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(id)] * n)")


def init_vector_env(env: gym.vector.VectorEnv, num_envs: int, single_observation_space: gym.Space,
                    single_action_space: gym.Space) -> None:
    """Give a `gymnasium.vector.VectorEnv` subclass its sizes and spaces (single and batched): 1.x's base class
    has no constructor, 0.29's takes these and also sets the attributes its `close` reads."""
    if GYMNASIUM_1:
        env.num_envs = num_envs
        env.single_observation_space, env.single_action_space = single_observation_space, single_action_space
        env.observation_space = gym.vector.utils.batch_space(single_observation_space, num_envs)
        env.action_space = gym.vector.utils.batch_space(single_action_space, num_envs)
    else:
        gym.vector.VectorEnv.__init__(env, num_envs, single_observation_space, single_action_space)


def autoreset_mode_of(vec_env: gym.vector.VectorEnv) -> AutoresetMode:
    """The vector env's auto-reset mode: its ``metadata["autoreset_mode"]`` (a string is read as the
    enum's value); without one, Gymnasium's default: NEXT_STEP in 1.x, SAME_STEP in 0.29."""
    default = AutoresetMode.NEXT_STEP if GYMNASIUM_1 else AutoresetMode.SAME_STEP
    mode = (getattr(vec_env, "metadata", None) or {}).get("autoreset_mode", default)
    return AutoresetMode(mode) if isinstance(mode, str) else mode


def is_polyak_vector_env(env_id: str) -> bool:
    """True if `env_id`'s vector entry point is one of polyak's (its JAX envs, gymnax): one vmapped call per step."""
    entry = gym.spec(env_id).vector_entry_point
    return isinstance(entry, str) and entry.startswith("polyak.")


def sync_vector_env(env_fns: list, same_step: bool = True) -> gym.vector.SyncVectorEnv:
    """`gymnasium.vector.SyncVectorEnv` over `env_fns` with SAME_STEP auto-reset, or NEXT_STEP with
    ``same_step=False`` (1.x only: 0.29's vector envs have no NEXT_STEP mode)."""
    if GYMNASIUM_1:
        mode = AutoresetMode.SAME_STEP if same_step else AutoresetMode.NEXT_STEP
        return gym.vector.SyncVectorEnv(env_fns, autoreset_mode=mode)
    if not same_step:
        raise ValueError(f"gymnasium {gym.__version__}'s vector envs reset in the same step; NEXT_STEP "
                         "auto-reset needs gymnasium >= 1.0")
    return gym.vector.SyncVectorEnv(env_fns)


def make_vector(env_id: str, num_envs: int, same_step: bool = True, **env_kwargs: Any) -> gym.vector.VectorEnv:
    """`num_envs` copies of `env_id` as a `gymnasium.vector.VectorEnv`, the same way under 0.29 and 1.x.

    polyak's JAX envs come from their vector entry point (one vmapped, jitted call; always SAME_STEP).
    Other ids are synchronous copies with SAME_STEP auto-reset, or NEXT_STEP with ``same_step=False``
    (1.x only: 0.29's vector envs have no NEXT_STEP mode).
    """
    if is_polyak_vector_env(env_id):
        if GYMNASIUM_1:
            return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)
        spec = gym.spec(env_id)
        kwargs = {**spec.kwargs, **env_kwargs}
        if spec.max_episode_steps is not None and "max_episode_steps" not in kwargs:
            kwargs["max_episode_steps"] = spec.max_episode_steps
        env = gym.envs.registration.load_env_creator(spec.vector_entry_point)(num_envs=num_envs, **kwargs)
        env.spec = copy.deepcopy(spec)
        env.spec.kwargs = kwargs
        return env
    if GYMNASIUM_1:
        mode = AutoresetMode.SAME_STEP if same_step else AutoresetMode.NEXT_STEP
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": mode}, **env_kwargs)
    env = sync_vector_env([lambda: gym.make(env_id, **env_kwargs) for _ in range(num_envs)], same_step)
    env.spec = gym.spec(env_id)  # as 1.x's make_vec does: errors and logs name the env
    return env
