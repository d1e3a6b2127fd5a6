"""AWAKE-like horizontal orbit steering in JAX: 10 correctors, 10 BPMs, a linear response matrix.

Lattice (invented but physical, computed below from thin-lens matrices)
-----------------------------------------------------------------------
A 19 MeV/c electron transfer line (magnetic rigidity B·rho = p/e = 0.0634 T·m) made of
``N_CELLS = 10`` identical thin-lens FODO cells. Cell k (k = 0..9) runs from the centre of the
focusing quadrupole QF_k at s = 3k m to the centre of QF_{k+1}:

    cell length         L  = 3.0 m  (line length 30 m, QF_0 .. QF_10 and QD_0 .. QD_9)
    QD_k                at s = 3k + 1.5 m (mid-cell)
    focal length        f  = L / (4 sin(45°)) = 1.0607 m for both QF and QD (opposite signs),
                        i.e. a 90° horizontal phase advance per cell. For a 0.1 m long quadrupole
                        this is k1 = 1/(f·0.1 m) = 9.43 m⁻², a gradient of 0.60 T/m at 19 MeV/c.
    corrector k (HCOR)  at s = 3k + 0.15 m   (just downstream of QF_k)
    BPM k               at s = 3k + 2.85 m   (just upstream of QF_{k+1})

So each corrector sits upstream of the BPM with the same index, and BPM k and corrector k+1
straddle QF_{k+1}: the usual "BPM + corrector next to every focusing quadrupole" layout, where the
horizontal β is largest. The beam enters matched to the periodic FODO solution (α = 0 and
β = β_max = L (1 + sin(μ/2)) / sin μ = 5.121 m at each QF centre). The Twiss β and the phase
advance μ (in units of 2π, counted from QF_0) at each corrector and BPM are the module constants
``CORRECTOR_BETA``, ``CORRECTOR_MU``, ``BPM_BETA``, ``BPM_MU``; they come from propagating the
periodic Twiss parameters through the thin-lens cell matrices:

    β = 4.427 m at every corrector and every BPM (mirror images about QF),
    μ_corrector,k = k/4 + 0.00501,   μ_BPM,k = k/4 + 0.24499   (0.2400·2π from corrector k to BPM k)

Response matrix (m/rad): R_ij = sqrt(β_i β_j) sin(2π(μ_i − μ_j)) for BPM i downstream of
corrector j (i ≥ j), else 0. Its singular values are 15.66, 15.44, 5.41, 5.24, 3.48, 3.28, 2.74,
2.52, 2.42, 2.17 m/rad (condition number 7.23), so one corrector step of 1e-4 rad moves a BPM
by a few tenths of a millimetre and the SVD correction Δθ = −R⁺b is exact and well conditioned
(`response_matrix`, `svd_correction`).
A 90° cell is the best-conditioned choice among 60°..120° (condition numbers 13.7 at 60°, 7.2 at
90°, 11.5 at 120°); putting corrector k and BPM k at the same high-β point of a cell, nearly 90° apart in
phase, keeps the diagonal of R large (with a BPM just after its corrector, R would be close to
singular). Starting from a kick-only orbit, −R⁺b = −θ exactly, so the clipped SVD step moves every
kick straight towards zero by up to step_limit per step.

Environment
-----------
State: the corrector kicks θ (10,) in rad and the step counter t. The true orbit at the BPMs is
b = R θ; the *measured* readings are b + ε, ε ~ N(0, reading_noise²) per BPM, drawn anew with
every observation. Everything the agent (or a real control room) sees is computed from the
measured readings: the observation clip(readings · observation_scale, −1, 1), the reward, success
and failure. ``info["rms"]`` is the *true* orbit RMS (noise-free), for evaluation.

Action: 10 corrector deltas in rad, ``action_space = Box(−1e-4, 1e-4, (10,))``; each is clipped
to ±step_limit inside `step` and added to the kicks.

Reward of a step, with ρ the RMS of the measured readings after the action, in one of two
variants (constructor argument ``reward``):

    "negative_rms" (default, the tutorial's):
    r = −reward_scale · ρ + success_reward · [success] − failure_penalty · (1 + max_steps − t) · [failure]

    "rms_decrease" (a potential-based shaping of the same goal):
    r = reward_scale · (ρ_prev − ρ) + success_reward · [success] − failure_penalty · [failure]

In "rms_decrease" the rewards of an episode telescope to reward_scale · (ρ_0 − ρ_final): the
return *is* the RMS reduction that the evaluation measures, every step that lowers the orbit pays
at once, and crashing costs the orbit growth up to the wall plus failure_penalty, so no extra charge
per remaining step is needed. ρ_prev is the previous *measured* RMS (kept in the state).

with reward_scale = 100 (a 5 mm orbit gives −0.5, the wall's 10 mm gives −1). success means
ρ < success_rms (1 mm); failure means any |measured reading| ≥ wall (10 mm, half of the 20 mm
aperture). The failure penalty is charged for this step and for every step that the episode
would still have had (t counts the steps taken including this one): with failure_penalty = 1,
the reward of a 10 mm orbit, crashing is worse than any way of staying inside the wall until the
time limit (every surviving step scores more than −1), so ending an episode early never pays.

Episode end: terminated on failure, and on success when terminate_on_success (default); truncated
when t ≥ max_steps (both flags can be True on the last step, as with Gymnasium's TimeLimit).
No auto-reset happens in `step`.

Reset: kick directions z ~ N(0, I); the kicks are scaled so that the true orbit RMS equals a
target drawn uniformly from [init_rms_min, init_rms_max] = [2, 6] mm, then scaled down (if
needed) so that max |reading| ≤ init_max_fraction · wall = 8 mm. The second scaling can only
reduce the RMS to ≥ 8 mm / sqrt(10) = 2.53 mm, so the initial true RMS always lies in [2, 6] mm:
the episode never starts succeeded (RMS > 1 mm) or failed (all readings < 10 mm). This is a
closed-form, jittable rescaling (no rejection loop). The 2 mm margin to the wall matters for
the clipped SVD baseline: per-corrector clipping bends the path through kick space, and from a
9 mm start a few episodes in a thousand reach the wall on the way; from 8 mm none did in 1000.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter

# --------------------------------------------------------------------------------------------
# Lattice
# --------------------------------------------------------------------------------------------

N_CELLS = 10  # = number of correctors = number of BPMs
CELL_LENGTH = 3.0  # m, QF centre to QF centre
CELL_PHASE_ADVANCE_DEG = 90.0  # horizontal phase advance per cell
FOCAL_LENGTH = CELL_LENGTH / (4.0 * np.sin(np.radians(CELL_PHASE_ADVANCE_DEG) / 2.0))  # m, |f| of QF and QD
CORRECTOR_OFFSET = 0.15  # m, corrector k at s = k L + 0.15 (downstream of QF_k)
BPM_OFFSET = CELL_LENGTH - 0.15  # m, BPM k at s = k L + 2.85 (upstream of QF_{k+1})
MOMENTUM_MEV = 19.0  # MeV/c (documentation: B·rho = 0.0634 T·m)

CORRECTOR_S = np.arange(N_CELLS) * CELL_LENGTH + CORRECTOR_OFFSET
BPM_S = np.arange(N_CELLS) * CELL_LENGTH + BPM_OFFSET


def _drift(length: float) -> np.ndarray:
    return np.array([[1.0, length], [0.0, 1.0]])


def _thin_quad(focal_length: float) -> np.ndarray:
    """A thin quadrupole; focal_length > 0 focuses in this (horizontal) plane."""
    return np.array([[1.0, 0.0], [-1.0 / focal_length, 1.0]])


def _transfer_from_qf_centre(s: float) -> np.ndarray:
    """Transfer matrix from the centre of QF (inside the thin lens) to a point s ∈ (0, L) in the cell."""
    half_qf = _thin_quad(2.0 * FOCAL_LENGTH)
    half = CELL_LENGTH / 2.0
    if s <= half:
        return _drift(s) @ half_qf
    return _drift(s - half) @ _thin_quad(-FOCAL_LENGTH) @ _drift(half) @ half_qf


def _periodic_twiss() -> tuple[float, float, float]:
    """(β, α, μ_cell [rad]) of the periodic solution at the QF centre."""
    m = _thin_quad(2.0 * FOCAL_LENGTH) @ _drift(CELL_LENGTH / 2.0) @ _thin_quad(-FOCAL_LENGTH) \
        @ _drift(CELL_LENGTH / 2.0) @ _thin_quad(2.0 * FOCAL_LENGTH)
    cos_mu = 0.5 * np.trace(m)
    mu = float(np.arccos(cos_mu))
    sin_mu = np.sign(m[0, 1]) * np.sin(mu)
    return float(m[0, 1] / sin_mu), float((m[0, 0] - m[1, 1]) / (2.0 * sin_mu)), mu


def _twiss_at(s_in_cell: float, beta0: float, alpha0: float) -> tuple[float, float]:
    """(β, phase advance [rad] from the QF centre) at s_in_cell ∈ (0, L), by matrix propagation."""
    m = _transfer_from_qf_centre(s_in_cell)
    gamma0 = (1.0 + alpha0**2) / beta0
    beta = m[0, 0] ** 2 * beta0 - 2.0 * m[0, 0] * m[0, 1] * alpha0 + m[0, 1] ** 2 * gamma0
    dmu = np.arctan2(m[0, 1], m[0, 0] * beta0 - m[0, 1] * alpha0)  # in [0, π) inside one 90° cell
    return float(beta), float(dmu)


PERIODIC_BETA, PERIODIC_ALPHA, CELL_MU = _periodic_twiss()  # at each QF centre (α = 0 by symmetry)
_beta_c, _mu_c = _twiss_at(CORRECTOR_OFFSET, PERIODIC_BETA, PERIODIC_ALPHA)
_beta_b, _mu_b = _twiss_at(BPM_OFFSET, PERIODIC_BETA, PERIODIC_ALPHA)

#: Twiss β [m] at the correctors and BPMs.
CORRECTOR_BETA = np.full(N_CELLS, _beta_c)
BPM_BETA = np.full(N_CELLS, _beta_b)
#: Phase advance from QF_0's centre, in units of 2π.
CORRECTOR_MU = (np.arange(N_CELLS) * CELL_MU + _mu_c) / (2.0 * np.pi)
BPM_MU = (np.arange(N_CELLS) * CELL_MU + _mu_b) / (2.0 * np.pi)


def response_matrix() -> np.ndarray:
    """The (10, 10) orbit response matrix in m/rad (NumPy float64): R[i, j] = ∂ BPM_i / ∂ corrector_j.

    R_ij = sqrt(β_i β_j) sin(2π(μ_i − μ_j)) when BPM i is downstream of corrector j (i ≥ j), else 0.
    """
    downstream = BPM_S[:, None] > CORRECTOR_S[None, :]
    amplitude = np.sqrt(BPM_BETA[:, None] * CORRECTOR_BETA[None, :])
    r = amplitude * np.sin(2.0 * np.pi * (BPM_MU[:, None] - CORRECTOR_MU[None, :]))
    return np.where(downstream, r, 0.0)


def response_pinv() -> np.ndarray:
    """The SVD pseudo-inverse R⁺ of `response_matrix()` (rad/m, NumPy float64)."""
    return np.linalg.pinv(response_matrix())


def svd_correction(response_pinv: jax.Array, readings_m: jax.Array, step_limit: float) -> jax.Array:
    """The classical SVD orbit correction: corrector deltas clip(−R⁺ b, ±step_limit) in rad.

    Pure and jittable (works on a batch of readings with shape (..., 10) too).
    """
    delta = -jnp.einsum("ij,...j->...i", jnp.asarray(response_pinv), jnp.asarray(readings_m))
    return jnp.clip(delta, -step_limit, step_limit)


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


class OrbitSteeringParams(NamedTuple):
    max_steps: int = 50  # episode length limit (truncation)
    step_limit: float = 1e-4  # rad, largest corrector change per step (actions are clipped to it)
    success_rms: float = 1e-3  # m, success when the measured orbit RMS is below this
    wall: float = 1e-2  # m, failure when any |measured reading| >= wall (half the 20 mm aperture)
    observation_scale: float = 100.0  # obs = clip(readings * 100, -1, 1): the wall maps to ±1
    reward_scale: float = 100.0  # reward = -100 * RMS [m] + ...: a 5 mm orbit gives -0.5
    reading_noise: float = 0.0  # m, std of the Gaussian BPM noise added to every measurement
    init_rms_min: float = 2e-3  # m, initial true orbit RMS ~ U(init_rms_min, init_rms_max) ...
    init_rms_max: float = 6e-3  # m
    init_max_fraction: float = 0.8  # ... then scaled so max |reading| <= 0.8 * wall (8 mm)
    success_reward: float = 1.0  # bonus added to the reward of a successful step
    failure_penalty: float = 1.0  # charged per step left (incl. this one) when the wall is hit
    terminate_on_success: bool = True


class OrbitSteeringState(NamedTuple):
    kicks: jax.Array  # (10,) corrector kicks in rad
    t: jax.Array  # steps taken in this episode (int32)
    measured_rms: jax.Array | float = 0.0  # RMS of the last measured readings (m), for "rms_decrease"


def _rms(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(x), axis=-1))


class OrbitSteering:
    """AWAKE-like orbit steering (see the module docstring); follows `polyak.envs.JaxEnv`."""

    default_params = OrbitSteeringParams()
    REWARDS = ("negative_rms", "rms_decrease")
    observation_space = gym.spaces.Box(-1.0, 1.0, (N_CELLS,), np.float32)
    action_space = gym.spaces.Box(-1e-4, 1e-4, (N_CELLS,), np.float32)
    #: the response matrix in m/rad (NumPy float64) and its pseudo-inverse in rad/m
    response = response_matrix()
    response_pinv = response_pinv()

    def __init__(self, reward: str = "negative_rms"):
        if reward not in self.REWARDS:
            raise ValueError(f"reward must be one of {self.REWARDS}, got {reward!r}")
        self.reward = reward

    def orbit(self, state: OrbitSteeringState) -> jax.Array:
        """The true (noise-free) BPM readings b = R θ in metres."""
        return jnp.asarray(self.response, state.kicks.dtype) @ state.kicks

    def measure(self, key: jax.Array, state: OrbitSteeringState, params: OrbitSteeringParams) -> jax.Array:
        """The measured BPM readings in metres: R θ plus Gaussian noise of std reading_noise."""
        orbit = self.orbit(state)
        return orbit + params.reading_noise * jax.random.normal(key, orbit.shape, orbit.dtype)

    @staticmethod
    def observe(readings: jax.Array, params: OrbitSteeringParams) -> jax.Array:
        return jnp.clip(readings * params.observation_scale, -1.0, 1.0)

    def reset(self, key: jax.Array, params: OrbitSteeringParams) -> tuple[OrbitSteeringState, jax.Array]:
        k_dir, k_rms, k_noise = jax.random.split(key, 3)
        direction = jax.random.normal(k_dir, (N_CELLS,), jnp.float32)
        response = jnp.asarray(self.response, jnp.float32)
        orbit = response @ direction
        target_rms = jax.random.uniform(k_rms, (), jnp.float32, params.init_rms_min, params.init_rms_max)
        scale = target_rms / _rms(orbit)
        max_reading = scale * jnp.max(jnp.abs(orbit))
        scale = scale * jnp.minimum(1.0, params.init_max_fraction * params.wall / max_reading)
        state = OrbitSteeringState(direction * scale, jnp.zeros((), jnp.int32))
        readings = self.measure(k_noise, state, params)
        return state._replace(measured_rms=_rms(readings)), self.observe(readings, params)

    def step(self, key: jax.Array, state: OrbitSteeringState, action: jax.Array, params: OrbitSteeringParams):
        p = params
        delta = jnp.clip(jnp.asarray(action, jnp.float32), -p.step_limit, p.step_limit)
        t = state.t + 1
        new_state = OrbitSteeringState(state.kicks + delta, t)
        readings = self.measure(key, new_state, p)
        rms = _rms(readings)
        new_state = new_state._replace(measured_rms=rms)
        failure = jnp.any(jnp.abs(readings) >= p.wall)
        success = (rms < p.success_rms) & ~failure
        bonus = p.success_reward * success.astype(jnp.float32)
        if self.reward == "negative_rms":
            steps_left = (1 + p.max_steps - t).astype(jnp.float32)
            reward = -p.reward_scale * rms + bonus - p.failure_penalty * steps_left * failure.astype(jnp.float32)
        else:  # "rms_decrease": reward_scale (rho_prev - rho), telescoping to the episode's RMS reduction
            reward = p.reward_scale * (state.measured_rms - rms) + bonus - p.failure_penalty * failure.astype(jnp.float32)
        terminated = failure | (success & jnp.asarray(p.terminate_on_success, bool))
        truncated = t >= p.max_steps
        info = {"rms": _rms(self.orbit(new_state)), "success": success, "failure": failure}
        return new_state, self.observe(readings, p), reward, terminated, truncated, info


def make_gymnasium_orbit_steering(reward: str = "negative_rms", **params) -> GymnasiumAdapter:
    """Entry point of ``gymnasium.make("polyak/OrbitSteering-v0")``; ``reward`` picks the variant, other
    keyword arguments override OrbitSteeringParams."""
    return GymnasiumAdapter(OrbitSteering(reward), OrbitSteeringParams(**params))


def make_vector_orbit_steering(num_envs: int, reward: str = "negative_rms", **params) -> GymnasiumVectorAdapter:
    """Entry point of ``gymnasium.make_vec("polyak/OrbitSteering-v0", num_envs, vectorization_mode="vector_entry_point")``."""
    return GymnasiumVectorAdapter(OrbitSteering(reward), num_envs, OrbitSteeringParams(**params))
