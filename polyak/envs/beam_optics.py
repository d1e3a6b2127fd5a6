"""Linear Gaussian-beam optics in JAX, with Cheetah 0.8's conventions, and the CLARA S04 lattice.

Phase space as in Cheetah: v = (x, px, y, py, tau, p, 1), the last coordinate making maps affine.
A Gaussian beam is its mean mu and covariance Sigma; through a 7x7 map R:

    mu' = R mu,    Sigma' = R Sigma R^T,    sigma_x = sqrt(Sigma_00),  sigma_y = sqrt(Sigma_22)

Elements (gamma = E / m_e c^2 with E the total energy, beta^2 = 1 - 1/gamma^2):

    drift        x += L px,  y += L py,  tau += R56 p   with  R56 = -L / (beta^2 gamma^2)
    quadrupole   per plane with K = k1 (x) or -k1 (y), phi = sqrt(|K|) L:
                 K > 0: [[cos phi, sin phi / sqrt K], [-sqrt K sin phi, cos phi]]
                 K < 0: [[cosh phi, sinh phi / sqrt|K|], [sqrt|K| sinh phi, cosh phi]]
                 (a power series in K L^2 near k1 = 0); the same R56 as a drift; a misalignment
                 d = (dx, dy) acts on (x - dx, y - dy) and shifts back: v' = R (v - d) + d
    corrector    a drift of length L whose thin kicks px += theta_x, py += theta_y sit at its exit
                 (x' = x + L px with the incoming px, as in Cheetah's CombinedCorrector)

The transverse planes are uncoupled and energy independent (k1 is normalised); the energy only
enters R56. Everything is pure, jittable and vmappable (batch dimensions also broadcast), and
follows the input dtype: float32 by default, float64 under `jax_enable_x64`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Electron rest energy [eV]: CODATA 2022, the value Cheetah 0.8.4 takes from scipy.constants.
ELECTRON_MASS_EV = 510998.95069

# Below this |K L^2| the quadrupole uses its power series (truncation error ~ 3e-17).
_SERIES_THRESHOLD = 1e-2


class IncomingBeam(NamedTuple):
    """An uncorrelated Gaussian beam at the lattice entrance (SI units: eV, m, rad)."""

    energy: jax.Array
    mu_x: jax.Array
    mu_px: jax.Array
    mu_y: jax.Array
    mu_py: jax.Array
    sigma_x: jax.Array
    sigma_px: jax.Array
    sigma_y: jax.Array
    sigma_py: jax.Array
    sigma_tau: jax.Array
    sigma_p: jax.Array


def _floats(*values) -> list[jax.Array]:
    """The values as arrays of their common floating dtype, broadcast to one shape."""
    dtype = jnp.result_type(float, *values)
    return jnp.broadcast_arrays(*(jnp.asarray(v, dtype) for v in values))


def beam_moments(beam: IncomingBeam) -> tuple[jax.Array, jax.Array]:
    """mu = (mu_x, mu_px, mu_y, mu_py, 0, 0, 1), Sigma = diag(sigma_x^2, ..., sigma_p^2, 0)."""
    b = IncomingBeam(*_floats(*beam))
    zero, one = jnp.zeros_like(b.mu_x), jnp.ones_like(b.mu_x)
    mu = jnp.stack([b.mu_x, b.mu_px, b.mu_y, b.mu_py, zero, zero, one], -1)
    var = jnp.stack([b.sigma_x, b.sigma_px, b.sigma_y, b.sigma_py, b.sigma_tau, b.sigma_p, zero], -1) ** 2
    return mu, var[..., :, None] * jnp.eye(7, dtype=var.dtype)


def track(mu: jax.Array, cov: jax.Array, transfer: jax.Array) -> tuple[jax.Array, jax.Array]:
    """mu' = R mu, Sigma' = R Sigma R^T (batch dimensions broadcast)."""
    mu_out = jnp.einsum("...ij,...j->...i", transfer, mu)
    cov_out = jnp.einsum("...ij,...jk,...lk->...il", transfer, cov, transfer)
    return mu_out, cov_out


# ---------------------------------------------------------------------------------------------
# Per-plane algebra. A plane map is (a, b, c, d, e, f): x' = a x + b px + e, px' = c x + d px + f.


def _r56(length, energy):
    """-L / (beta^2 gamma^2) with gamma = E / m_e."""
    igamma2 = (ELECTRON_MASS_EV / energy) ** 2
    return -length * igamma2 / (1.0 - igamma2)


def _quad_planes(length, k1, xp=jnp):
    """(C, S, C') of a thick quadrupole's x plane (K = k1) and y plane (K = -k1).

    `xp` is jax.numpy, or numpy for the float64 constants computed at import.
    """
    u = k1 * length**2
    small = xp.abs(u) < _SERIES_THRESHOLD
    root_k = xp.sqrt(xp.where(small, 1.0, xp.abs(k1)))  # no 0/0 and no infinite gradient at k1 = 0
    phi = root_k * length
    sin, sinh = xp.sin(phi), xp.sinh(phi)
    focusing = (xp.cos(phi), sin / root_k, -root_k * sin)
    defocusing = (xp.cosh(phi), sinh / root_k, root_k * sinh)

    def plane(sign):
        v = sign * u  # K L^2 of this plane
        c = 1.0 + v * (-1 / 2 + v * (1 / 24 + v * (-1 / 720 + v * (1 / 40320))))
        s = (1.0 + v * (-1 / 6 + v * (1 / 120 + v * (-1 / 5040 + v * (1 / 362880))))) * length
        series = (c, s, -sign * k1 * s)
        direct = (xp.where(sign * k1 > 0, f, d) for f, d in zip(focusing, defocusing))
        return tuple(xp.where(small, ser, dir_) for ser, dir_ in zip(series, direct))

    return plane(1.0), plane(-1.0)


def _quad_plane_map(c, s, cp, offset):
    """v' = R (v - (offset, 0)) + (offset, 0) for the plane block R = [[c, s], [cp, c]]."""
    return c, s, cp, c, (1.0 - c) * offset, -cp * offset


def _drift_plane_map(length):
    return 1.0, length, 0.0, 1.0, 0.0, 0.0


def _then(first, second):
    """The plane map `second` after `first`."""
    a1, b1, c1, d1, e1, f1 = first
    a2, b2, c2, d2, e2, f2 = second
    return (a2 * a1 + b2 * c1, a2 * b1 + b2 * d1, c2 * a1 + d2 * c1, c2 * b1 + d2 * d1,
            a2 * e1 + b2 * f1 + e2, c2 * e1 + d2 * f1 + f2)


def _affine_map(x_plane, y_plane, r56) -> jax.Array:
    """The 7x7 map from the x and y plane maps and the longitudinal tau += r56 p."""
    a, b, c, d, e, f, g, h, i, j, k, m, r = _floats(*x_plane, *y_plane, r56)
    o, z = jnp.ones_like(a), jnp.zeros_like(a)
    rows = ((a, b, z, z, z, z, e),
            (c, d, z, z, z, z, f),
            (z, z, g, h, z, z, k),
            (z, z, i, j, z, z, m),
            (z, z, z, z, o, r, z),
            (z, z, z, z, z, o, z),
            (z, z, z, z, z, z, o))
    return jnp.stack([jnp.stack(row, -1) for row in rows], -2)


# ---------------------------------------------------------------------------------------------
# Element transfer maps (7x7), as Cheetah 0.8's first_order_transfer_map.


def drift_map(length, energy) -> jax.Array:
    """Drift: x += L px, y += L py, tau += -L / (beta^2 gamma^2) p."""
    plane = _drift_plane_map(length)
    return _affine_map(plane, plane, _r56(length, energy))


def quadrupole_map(length, k1, energy, misalignment=(0.0, 0.0)) -> jax.Array:
    """Thick quadrupole (k1 > 0 focuses in x), misaligned by (dx, dy): v' = R (v - d) + d."""
    if isinstance(misalignment, (tuple, list)):
        dx, dy = misalignment  # Python numbers stay weakly typed
    else:
        dx, dy = jnp.asarray(misalignment)[..., 0], jnp.asarray(misalignment)[..., 1]
    (cx, sx, cpx), (cy, sy, cpy) = _quad_planes(length, k1)
    return _affine_map(_quad_plane_map(cx, sx, cpx, dx), _quad_plane_map(cy, sy, cpy, dy), _r56(length, energy))


def corrector_map(length, angle_x, angle_y, energy) -> jax.Array:
    """Combined H/V corrector: a drift of length L, then the kicks px += angle_x, py += angle_y."""
    return _affine_map((1.0, length, 0.0, 1.0, 0.0, angle_x), (1.0, length, 0.0, 1.0, 0.0, angle_y),
                       _r56(length, energy))


# ---------------------------------------------------------------------------------------------
# The CLARA S04 segment: HVCOR1 and Q1-Q3 are actuated; Q4 is fixed but misaligned; the screen.


class LatticeElement(NamedTuple):
    name: str
    kind: str  # "drift", "corrector", "quadrupole" or "screen"
    length: float  # [m]
    k1: float = 0.0  # design strength of a quadrupole [1/m^2]


CORRECTOR_LENGTH = 0.05000000074505806
QUADRUPOLE_LENGTH = 0.16200000047683716
Q1_K1_DEFAULT = 1.3024706840515137
Q2_K1_DEFAULT = -3.2427618503570557
Q3_K1_DEFAULT = 0.9439954161643982
Q4_K1 = -1.2841088771820068  # not actuated

CLARA_S04_LATTICE = (
    LatticeElement("APERTURE", "drift", 0.0),
    LatticeElement("DRIFT_02", "drift", 0.12856799364089966),
    LatticeElement("HVCOR1", "corrector", CORRECTOR_LENGTH),
    LatticeElement("DRIFT_04", "drift", 0.039500001817941666),
    LatticeElement("Q1", "quadrupole", QUADRUPOLE_LENGTH, Q1_K1_DEFAULT),
    LatticeElement("DRIFT_06", "drift", 0.05050000175833702),
    LatticeElement("DRIFT_07", "drift", 0.05050000175833702),
    LatticeElement("DRIFT_08_BPM1", "drift", 0.10499999672174454),
    LatticeElement("DRIFT_09_BPM1", "drift", 0.10499999672174454),
    LatticeElement("DRIFT_10", "drift", 0.04749999940395355),
    LatticeElement("Q2", "quadrupole", QUADRUPOLE_LENGTH, Q2_K1_DEFAULT),
    LatticeElement("DRIFT_12", "drift", 0.21329499781131744),
    LatticeElement("DRIFT_13", "drift", 0.1247050017118454),
    LatticeElement("Q3", "quadrupole", QUADRUPOLE_LENGTH, Q3_K1_DEFAULT),
    LatticeElement("DRIFT_15", "drift", 0.049931999295949936),
    LatticeElement("DRIFT_16_BPM2", "drift", 0.10499999672174454),
    LatticeElement("DRIFT_17_BPM2", "drift", 0.10499999672174454),
    LatticeElement("DRIFT_18", "drift", 0.07806800305843353),
    LatticeElement("Q4", "quadrupole", QUADRUPOLE_LENGTH, Q4_K1),
    LatticeElement("DRIFT_20", "drift", 0.22450000047683716),
    LatticeElement("HVCOR2", "corrector", CORRECTOR_LENGTH),  # not actuated: angles 0
    LatticeElement("DRIFT_22", "drift", 0.0788320004940033),
    LatticeElement("DRIFT_23", "drift", 0.7799680233001709),
    LatticeElement("SCREEN", "screen", 0.0),
)

SCREEN_RESOLUTION = (2560, 2160)  # pixels (width, height)
SCREEN_PIXEL_SIZE = 13e-6  # [m]
SCREEN_HALF_WIDTH = SCREEN_RESOLUTION[0] / 2 * SCREEN_PIXEL_SIZE  # 16.64 mm
SCREEN_HALF_HEIGHT = SCREEN_RESOLUTION[1] / 2 * SCREEN_PIXEL_SIZE  # 14.04 mm

CLARA_S04_LENGTH = sum(e.length for e in CLARA_S04_LATTICE)


def _lattice_index(name: str) -> int:
    return [e.name for e in CLARA_S04_LATTICE].index(name)


def _drift_length(start: int, stop: int) -> float:
    """Total length of CLARA_S04_LATTICE[start:stop], which must act as drifts here."""
    assert all(e.kind != "quadrupole" and e.name != "HVCOR1" for e in CLARA_S04_LATTICE[start:stop])
    return float(sum(e.length for e in CLARA_S04_LATTICE[start:stop]))


def _fixed_blocks():
    """Merged drifts between the actuated elements, and the fixed tail Q3 -> screen (float64)."""
    hv1, q1, q2, q3, q4 = (_lattice_index(n) for n in ("HVCOR1", "Q1", "Q2", "Q3", "Q4"))
    entrance_to_kick = _drift_length(0, hv1) + CORRECTOR_LENGTH  # the corrector's body, then its kick
    kick_to_q1 = _drift_length(hv1 + 1, q1)
    q1_to_q2, q2_to_q3 = _drift_length(q1 + 1, q2), _drift_length(q2 + 1, q3)
    before_q4, after_q4 = _drift_length(q3 + 1, q4), _drift_length(q4 + 1, len(CLARA_S04_LATTICE))

    def drift(length):
        return np.array([[1.0, length], [0.0, 1.0]])

    tails = []
    for plane in _quad_planes(QUADRUPOLE_LENGTH, Q4_K1, xp=np):
        c, s, cp = (float(v) for v in plane)
        quad = np.array([[c, s], [cp, c]])
        matrix = drift(after_q4) @ quad @ drift(before_q4)
        offset_per_dx = drift(after_q4) @ (np.eye(2) - quad)[:, 0]  # Q4 misalignment -> screen
        tails.append((tuple(float(v) for v in matrix.ravel()), tuple(float(v) for v in offset_per_dx)))
    return entrance_to_kick, kick_to_q1, q1_to_q2, q2_to_q3, tuple(tails)


_ENTRANCE_TO_KICK, _KICK_TO_Q1, _Q1_TO_Q2, _Q2_TO_Q3, _TAILS = _fixed_blocks()


def _clara_s04_planes(magnets, misalignments):
    """The (x, y) plane maps entrance -> screen."""
    magnets, misalignments = jnp.asarray(magnets), jnp.asarray(misalignments)
    k1s = magnets[..., 2], magnets[..., 3], magnets[..., 4]
    quads = [_quad_planes(QUADRUPOLE_LENGTH, k1) for k1 in k1s]
    maps = []
    for axis in (0, 1):
        kick = magnets[..., axis]
        plane = (1.0, _ENTRANCE_TO_KICK + _KICK_TO_Q1, 0.0, 1.0, _KICK_TO_Q1 * kick, kick)
        for n, gap in enumerate((_Q1_TO_Q2, _Q2_TO_Q3, None)):
            plane = _then(plane, _quad_plane_map(*quads[n][axis], misalignments[..., n, axis]))
            if gap is not None:
                plane = _then(plane, _drift_plane_map(gap))
        (ta, tb, tc, td), (ge, gf) = _TAILS[axis]
        dx4 = misalignments[..., 3, axis]
        maps.append(_then(plane, (ta, tb, tc, td, ge * dx4, gf * dx4)))
    return maps


def clara_s04_transfer(magnets, misalignments, energy) -> jax.Array:
    """The 7x7 map from the entrance to the screen.

    magnets = (HVCOR1 angle x, HVCOR1 angle y [rad], k1 of Q1, Q2, Q3 [1/m^2]);
    misalignments (4, 2) = (dx, dy) of Q1-Q4 [m]; energy [eV] (only enters R56 = -L / (beta gamma)^2).
    """
    x_plane, y_plane = _clara_s04_planes(magnets, misalignments)
    return _affine_map(x_plane, y_plane, _r56(CLARA_S04_LENGTH, jnp.asarray(energy)))


def clara_s04_screen_beam(magnets, misalignments, beam: IncomingBeam) -> jax.Array:
    """(mu_x, sigma_x, mu_y, sigma_y) on the screen [m]; equals `track` through `clara_s04_transfer`."""
    out = []
    for (a, b, *_, e, _f), mu, mu_p, sigma, sigma_p in zip(
            _clara_s04_planes(magnets, misalignments), (beam.mu_x, beam.mu_y), (beam.mu_px, beam.mu_py),
            (beam.sigma_x, beam.sigma_y), (beam.sigma_px, beam.sigma_py)):
        out += [a * mu + b * mu_p + e, jnp.sqrt((a * sigma) ** 2 + (b * sigma_p) ** 2)]
    return jnp.stack(_floats(*out), -1)
