"""TransverseTuning: centre and focus an electron beam on a screen with five magnets (CLARA S04-like).

The segment (`beam_optics.CLARA_S04`) is a combined H/V corrector, three actuated quadrupoles
Q1-Q3, a fixed quadrupole Q4 and a screen 3 m downstream. The agent reads the beam on the screen
(mu_x, sigma_x, mu_y, sigma_y) and sets the magnets; the goal is a target beam.

    magnets  = (theta_x [rad], theta_y [rad], k1_Q1, k1_Q2, k1_Q3 [1/m^2]),  |theta| <= 5.3 mrad, |k1| <= 30
    delta mode:  magnets' = clip(magnets + clip(a, -max_delta, max_delta), -limits, limits)
                 max_delta = (0.618 mrad, 0.618 mrad, 2, 2, 2)
    direct mode: magnets' = clip(a, -limits, limits)
    beam     = linear Gaussian tracking of the incoming beam through the misaligned lattice
    reading  = beam + N(0, reading_noise^2)   (sigma readings as |.|)
    MAE      = mean |beam - target| over the 4 beam parameters [m]
    obs      = (reading / screen half-size, magnets / limits, target / screen half-size,
                symlog(reading - target)), clipped to [-1, 1]
    symlog(e) = sign(e) log(1 + |e| / 10 um) / log(1 + 20 mm / 10 um)

The last four entries resolve errors from 10 um to 20 mm on one scale (20 um -> 0.14, 300 um ->
0.45, 2 mm -> 0.70): the task spans almost three decades and a linear reading alone hides the last
one from a network. `observation="challenge"` gives the 13 entries without them.
`observation="with_history"` appends the last step to the 17 (26 entries): the previous reading's
symlog errors and the last applied magnet change / max_delta (on reset: the reading's errors again
and zeros). The beam's response to the magnets depends on the unobserved incoming beam and
misalignments; one step of history shows the policy what its last move did.

Rewards (`reward=` of the constructor; all computed from the reading, as a real machine would):
    "log_mae" (default)  r = log(1 mm / max(MAE, 1 um))          positive once the MAE is below 1 mm
    "negative_mae"       r = -MAE / 1 mm
    "differential"       r = (MAE_prev - MAE) / MAE_initial        (the ARES-EA paper's shaping)
    minus `offscreen_penalty` on every step that ends with the beam centre off the screen.

On reset the incoming beam (energy 80-160 MeV, mu +-5 mm, mu' +-0.1 mrad, sigma 10-500 um,
sigma' 1-50 urad, sigma_tau 1-50 um, sigma_p 1e-4-1e-3), the misalignments of Q1-Q4 (+-0.5 mm in
x and y) and the target (mu +-2 mm, sigma 0-2 mm) are drawn at random; the magnets start at the
challenge's (0, 0, 10, -10, 10). Any of these can be fixed through the params: NaN entries are
drawn, finite entries are used as given (so `target=(0, 0, 0, 0)` is the challenge's target).
Episodes last `max_steps` (50 for training, 150 for the challenge evaluation); there is no
termination unless `terminate_below_mae` > 0. ``info`` holds the true (noise-free) beam, the MAE,
the magnets, the target and an on-screen flag.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.envs.beam_optics import SCREEN_HALF_HEIGHT, SCREEN_HALF_WIDTH, IncomingBeam, clara_s04_screen_beam
from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter

MAGNET_LIMITS = np.array([5.3e-3, 5.3e-3, 30.0, 30.0, 30.0])
MAX_DELTA = np.array([6.18e-4, 6.18e-4, 2.0, 2.0, 2.0])
CHALLENGE_START = (0.0, 0.0, 10.0, -10.0, 10.0)
MAGNET_NAMES = ("HVCOR1_x", "HVCOR1_y", "Q1_k1", "Q2_k1", "Q3_k1")
BEAM_NAMES = ("mu_x", "sigma_x", "mu_y", "sigma_y")
# Incoming-beam ranges in IncomingBeam's field order (energy in eV, lengths in m, angles in rad).
INCOMING_LOW = np.array([80e6, -5e-3, -1e-4, -5e-3, -1e-4, 1e-5, 1e-6, 1e-5, 1e-6, 1e-6, 1e-4])
INCOMING_HIGH = np.array([160e6, 5e-3, 1e-4, 5e-3, 1e-4, 5e-4, 5e-5, 5e-4, 5e-5, 5e-5, 1e-3])
TARGET_LOW = np.array([-2e-3, 0.0, -2e-3, 0.0])
TARGET_HIGH = np.array([2e-3, 2e-3, 2e-3, 2e-3])
SCREEN_SCALE = np.array([SCREEN_HALF_WIDTH, SCREEN_HALF_WIDTH, SCREEN_HALF_HEIGHT, SCREEN_HALF_HEIGHT])
REWARDS = ("log_mae", "negative_mae", "differential")
ACTION_MODES = ("delta", "direct")
OBSERVATIONS = ("with_log_errors", "challenge", "with_history")
LOG_ERROR_UNIT, LOG_ERROR_RANGE = 10e-6, 20e-3
NAN = float("nan")


class TransverseTuningParams(NamedTuple):
    max_steps: int = 50
    reading_noise: float = 0.0  # std of the Gaussian noise on each beam reading [m]
    offscreen_penalty: float = 1.0
    terminate_below_mae: float = 0.0  # > 0: the episode terminates once the MAE is below this [m]
    max_misalignment: float = 5e-4  # [m], quadrupoles Q1-Q4, x and y
    # Fixed values (NaN = drawn on reset):
    initial_magnets: tuple = CHALLENGE_START
    target: tuple = (NAN,) * 4  # (mu_x, sigma_x, mu_y, sigma_y) [m]
    incoming_beam: tuple = (NAN,) * 11  # IncomingBeam field order
    misalignments: tuple = (NAN,) * 8  # (dx, dy) of Q1, Q2, Q3, Q4 [m]


class TransverseTuningState(NamedTuple):
    magnets: jax.Array  # (5,)
    incoming: jax.Array  # (11,) IncomingBeam fields
    misalignments: jax.Array  # (4, 2)
    target: jax.Array  # (4,)
    mae_previous: jax.Array  # MAE of the last reading (for the differential reward)
    mae_initial: jax.Array
    t: jax.Array
    previous_errors: jax.Array  # (4,) symlog errors of the reading before the last one
    last_change: jax.Array  # (5,) the last applied magnet change / MAX_DELTA


def _fixed_or_drawn(key, fixed, low, high):
    fixed = jnp.asarray(fixed, jnp.float32)
    drawn = jax.random.uniform(key, fixed.shape, minval=jnp.asarray(low, jnp.float32),
                               maxval=jnp.asarray(high, jnp.float32))
    return jnp.where(jnp.isnan(fixed), drawn, fixed)


def mean_absolute_error(beam: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.mean(jnp.abs(beam - target), axis=-1)


class TransverseTuning:
    """The CLARA S04-like transverse tuning task (see the module docstring); follows `polyak.envs.JaxEnv`."""

    default_params = TransverseTuningParams()

    def __init__(self, action_mode: str = "delta", reward: str = "log_mae", observation: str = "with_log_errors"):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        self.action_mode, self.reward, self.observation = action_mode, reward, observation
        obs_dim = {"with_log_errors": 17, "challenge": 13, "with_history": 26}[observation]
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        bound = MAX_DELTA if action_mode == "delta" else MAGNET_LIMITS
        self.action_space = gym.spaces.Box(-bound.astype(np.float32), bound.astype(np.float32), dtype=np.float32)

    # -- pieces shared with controllers and evaluation ------------------------------------------
    @staticmethod
    def screen_beam(state: TransverseTuningState, magnets: jax.Array) -> jax.Array:
        return clara_s04_screen_beam(magnets, state.misalignments, IncomingBeam(*state.incoming))

    def _read(self, key, beam, params):
        noisy = beam + params.reading_noise * jax.random.normal(key, beam.shape, beam.dtype)
        return noisy.at[jnp.array([1, 3])].set(jnp.abs(noisy[jnp.array([1, 3])]))

    @staticmethod
    def log_errors(reading, target) -> jax.Array:
        error = reading - target
        return jnp.sign(error) * jnp.log1p(jnp.abs(error) / LOG_ERROR_UNIT) / np.log1p(LOG_ERROR_RANGE / LOG_ERROR_UNIT)

    def observe(self, reading, magnets, target, previous_errors=None, last_change=None) -> jax.Array:
        parts = [reading / SCREEN_SCALE, magnets / MAGNET_LIMITS, target / SCREEN_SCALE]
        if self.observation != "challenge":
            parts.append(self.log_errors(reading, target))
        if self.observation == "with_history":
            parts += [previous_errors, last_change]
        return jnp.clip(jnp.concatenate(parts), -1.0, 1.0).astype(jnp.float32)

    @staticmethod
    def on_screen(beam) -> jax.Array:
        return (jnp.abs(beam[0]) < SCREEN_HALF_WIDTH) & (jnp.abs(beam[2]) < SCREEN_HALF_HEIGHT)

    # -- the protocol ----------------------------------------------------------------------------
    def reset(self, key: jax.Array, params: TransverseTuningParams):
        k_beam, k_mis, k_target, k_magnets, k_read = jax.random.split(key, 5)
        limit = jnp.asarray(MAGNET_LIMITS, jnp.float32)
        magnets = _fixed_or_drawn(k_magnets, params.initial_magnets, -limit, limit)
        incoming = _fixed_or_drawn(k_beam, params.incoming_beam, INCOMING_LOW, INCOMING_HIGH)
        m = params.max_misalignment
        misalignments = _fixed_or_drawn(k_mis, params.misalignments, -m, m).reshape(4, 2)
        target = _fixed_or_drawn(k_target, params.target, TARGET_LOW, TARGET_HIGH)
        state = TransverseTuningState(magnets, incoming, misalignments, target, jnp.zeros(()), jnp.zeros(()),
                                      jnp.zeros((), jnp.int32), jnp.zeros(4, jnp.float32), jnp.zeros(5, jnp.float32))
        reading = self._read(k_read, self.screen_beam(state, magnets), params)
        mae = mean_absolute_error(reading, target)
        errors = self.log_errors(reading, target).astype(jnp.float32)
        state = state._replace(mae_previous=mae, mae_initial=mae, previous_errors=errors)
        return state, self.observe(reading, magnets, target, errors, state.last_change)

    def step(self, key: jax.Array, state: TransverseTuningState, action: jax.Array, params: TransverseTuningParams):
        limit = jnp.asarray(MAGNET_LIMITS, jnp.float32)
        if self.action_mode == "delta":
            delta = jnp.clip(action, -MAX_DELTA, MAX_DELTA)
            magnets = jnp.clip(state.magnets + delta, -limit, limit)
        else:
            magnets = jnp.clip(action, -limit, limit)
        magnets = magnets.astype(jnp.float32)
        beam = self.screen_beam(state, magnets)
        reading = self._read(key, beam, params)
        mae_reading = mean_absolute_error(reading, state.target)
        on_screen = self.on_screen(beam)
        if self.reward == "log_mae":
            reward = jnp.log(1e-3 / jnp.maximum(mae_reading, 1e-6))
        elif self.reward == "negative_mae":
            reward = -mae_reading / 1e-3
        else:
            reward = (state.mae_previous - mae_reading) / jnp.maximum(state.mae_initial, 1e-9)
        reward = reward - params.offscreen_penalty * (~on_screen)
        mae = mean_absolute_error(beam, state.target)
        t = state.t + 1
        terminated = (params.terminate_below_mae > 0) & (mae < params.terminate_below_mae)
        change = ((magnets - state.magnets) / MAX_DELTA).astype(jnp.float32)
        observation = self.observe(reading, magnets, state.target, state.previous_errors, change)
        state = state._replace(magnets=magnets, mae_previous=mae_reading, t=t,
                               previous_errors=self.log_errors(reading, state.target).astype(jnp.float32),
                               last_change=change)
        info = {"mae": mae, "on_screen": on_screen, "beam": beam, "magnets": magnets, "target": state.target}
        return (state, observation, reward.astype(jnp.float32), terminated,
                t >= params.max_steps, info)


def _split_kwargs(kwargs):
    env_kwargs = {k: kwargs.pop(k) for k in ("action_mode", "reward", "observation") if k in kwargs}
    params = {k: tuple(v) if isinstance(v, (list, np.ndarray)) else v for k, v in kwargs.items()}
    return TransverseTuning(**env_kwargs), TransverseTuningParams(**params)


def make_gymnasium_transverse_tuning(**kwargs) -> GymnasiumAdapter:
    """Entry point of ``gymnasium.make("polyak/TransverseTuning-v0", ...)``.

    ``action_mode``, ``reward`` and ``observation`` choose the variant; other keywords override TransverseTuningParams.
    """
    env, params = _split_kwargs(dict(kwargs))
    return GymnasiumAdapter(env, params)


def make_vector_transverse_tuning(num_envs: int, **kwargs) -> GymnasiumVectorAdapter:
    """``num_envs`` TransverseTuning envs in one vmapped call (Gymnasium vector env, SAME_STEP autoreset)."""
    env, params = _split_kwargs(dict(kwargs))
    return GymnasiumVectorAdapter(env, num_envs, params)
