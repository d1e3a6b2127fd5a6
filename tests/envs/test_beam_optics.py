"""Linear beam optics: analytic properties of the element maps, and agreement with Cheetah 0.8."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.envs import beam_optics as bo

ENERGY = 1.2e8  # eV
N = 128  # random settings per batch (one size throughout, so each jitted function compiles once per dtype)
screen_beams = jax.jit(jax.vmap(bo.clara_s04_screen_beam))
transfers = jax.jit(jax.vmap(bo.clara_s04_transfer))


@pytest.fixture
def x64():
    """float64 for the duration of one test (restored afterwards)."""
    with jax.enable_x64(True):
        yield


def plane_blocks(R):
    R = np.asarray(R)
    return R[0:2, 0:2], R[2:4, 2:4]


def random_settings(rng, n):
    """Magnets, misalignments and incoming beams drawn from the challenge's ranges (float64 numpy)."""
    magnets = rng.uniform(-1, 1, (n, 5)) * np.array([5.3e-3, 5.3e-3, 30.0, 30.0, 30.0])
    misalignments = rng.uniform(-5e-4, 5e-4, (n, 4, 2))
    ranges = {"energy": (80e6, 160e6), "mu_x": (-5e-3, 5e-3), "mu_px": (-1e-4, 1e-4), "mu_y": (-5e-3, 5e-3),
              "mu_py": (-1e-4, 1e-4), "sigma_x": (1e-5, 5e-4), "sigma_px": (1e-6, 5e-5), "sigma_y": (1e-5, 5e-4),
              "sigma_py": (1e-6, 5e-5), "sigma_tau": (1e-6, 5e-5), "sigma_p": (1e-4, 1e-3)}
    beam = bo.IncomingBeam(**{k: rng.uniform(lo, hi, n) for k, (lo, hi) in ranges.items()})
    return magnets, misalignments, beam


# ------------------------------------------------------------------------------- analytic tests


def test_drift_moves_x_by_l_px_and_grows_sigma(x64):
    length = 0.7
    R = np.asarray(bo.drift_map(length, ENERGY))
    beam = bo.IncomingBeam(ENERGY, 1e-3, 2e-4, -2e-3, -1e-4, 1e-4, 3e-5, 2e-4, 1e-5, 1e-5, 5e-4)
    mu, cov = bo.track(*bo.beam_moments(beam), R)
    np.testing.assert_allclose(mu[:4], [1e-3 + length * 2e-4, 2e-4, -2e-3 - length * 1e-4, -1e-4], rtol=1e-14)
    np.testing.assert_allclose(cov[0, 0], 1e-4**2 + length**2 * 3e-5**2, rtol=1e-14)
    np.testing.assert_allclose(cov[2, 2], 2e-4**2 + length**2 * 1e-5**2, rtol=1e-14)
    np.testing.assert_allclose(cov[0, 1], length * 3e-5**2, rtol=1e-14)
    gamma = ENERGY / bo.ELECTRON_MASS_EV
    np.testing.assert_allclose(R[4, 5], -length / ((1 - gamma**-2) * gamma**2), rtol=1e-14)
    R_expected = np.eye(7)
    R_expected[0, 1] = R_expected[2, 3] = length
    R_expected[4, 5] = R[4, 5]
    np.testing.assert_array_equal(R, R_expected)


def test_quadrupole_thin_lens_limit(x64):
    focal_length = 2.0
    errors = []
    for length in (1e-2, 1e-3, 1e-4):
        R = bo.quadrupole_map(length, 1 / (focal_length * length), ENERGY)
        rx, ry = plane_blocks(R)
        errors.append(max(np.abs(rx - [[1, 0], [-1 / focal_length, 1]]).max(),
                          np.abs(ry - [[1, 0], [1 / focal_length, 1]]).max()))
    assert errors[-1] < 2e-4 and errors[0] > 5 * errors[1] > 25 * errors[2]  # converges like L


@pytest.mark.parametrize("k1", [7.3, 0.31, 1e-3, 1e-7, 0.0])
def test_focusing_defocusing_symmetry(x64, k1):
    misalignment = np.array([3e-4, -2e-4])
    R_plus = bo.quadrupole_map(0.162, k1, ENERGY, misalignment)
    R_minus = bo.quadrupole_map(0.162, -k1, ENERGY, misalignment[::-1])
    swap = [2, 3, 0, 1, 4, 5, 6]  # x <-> y
    np.testing.assert_allclose(np.asarray(R_minus)[np.ix_(swap, swap)], R_plus, rtol=1e-14, atol=1e-18)


def test_transverse_blocks_have_unit_determinant(x64):
    rng = np.random.default_rng(1)
    lengths = rng.uniform(0.0, 1.0, 200)
    k1s = rng.uniform(-30, 30, 200) * 10.0 ** rng.uniform(-8, 0, 200)  # both sides of the series switch
    R = jax.vmap(bo.quadrupole_map, in_axes=(0, 0, None))(lengths, k1s, ENERGY)
    for block in (np.asarray(R[:, 0:2, 0:2]), np.asarray(R[:, 2:4, 2:4])):
        # cosh^2 - sinh^2 = 1 loses digits in proportion to the terms' size
        size = np.abs(block[:, 0, 0] * block[:, 1, 1]) + np.abs(block[:, 0, 1] * block[:, 1, 0])
        assert (np.abs(np.linalg.det(block) - 1.0) <= 1e-15 * size + 1e-15).all()
    R = bo.corrector_map(0.05, 1e-3, 2e-3, ENERGY)
    assert np.linalg.det(np.asarray(R)[0:2, 0:2]) == 1.0 == np.linalg.det(np.asarray(R)[2:4, 2:4])


def test_quadrupole_is_smooth_at_k1_zero(x64):
    length = 0.162
    np.testing.assert_array_equal(bo.quadrupole_map(length, 0.0, ENERGY), bo.drift_map(length, ENERGY))
    # The series (used for |k1 L^2| < 1e-2) equals the closed form on both sides of the switch.
    for k1 in np.array([0.999999, 1.000001, 0.5, 1e-3]) * 1e-2 / length**2:
        phi = np.sqrt(k1) * length
        focusing = [[np.cos(phi), np.sin(phi) / np.sqrt(k1)], [-np.sqrt(k1) * np.sin(phi), np.cos(phi)]]
        defocusing = [[np.cosh(phi), np.sinh(phi) / np.sqrt(k1)], [np.sqrt(k1) * np.sinh(phi), np.cosh(phi)]]
        rx, ry = plane_blocks(bo.quadrupole_map(length, k1, ENERGY))
        np.testing.assert_allclose(rx, focusing, rtol=1e-14)
        np.testing.assert_allclose(ry, defocusing, rtol=1e-14)
    grad = jax.jacfwd(lambda k1: bo.quadrupole_map(length, k1, ENERGY))(0.0)
    assert np.isfinite(np.asarray(grad)).all()
    # d/dk1 at 0: C = 1 - k1 L^2/2, S = L - k1 L^3/6, C' = -k1 L
    np.testing.assert_allclose(grad[0, 0], -length**2 / 2, rtol=1e-14)
    np.testing.assert_allclose(grad[0, 1], -length**3 / 6, rtol=1e-14)
    np.testing.assert_allclose(grad[1, 0], -length, rtol=1e-14)
    np.testing.assert_allclose(grad[3, 2], length, rtol=1e-14)


def test_misaligned_quadrupole_without_strength_is_a_drift(x64):
    np.testing.assert_allclose(bo.quadrupole_map(0.162, 0.0, ENERGY, (4e-4, -3e-4)),
                               bo.drift_map(0.162, ENERGY), rtol=0, atol=1e-19)


def test_misaligned_quadrupole_kicks_like_a_dipole(x64):
    focal_length, dx, dy, length = 1.5, 4e-4, -3e-4, 1e-4
    R = np.asarray(bo.quadrupole_map(length, 1 / (focal_length * length), ENERGY, (dx, dy)))
    on_axis = np.array([0, 0, 0, 0, 0, 0, 1.0])
    x, px, y, py = (R @ on_axis)[:4]
    # Focusing in x pulls the beam towards the magnet's centre, defocusing in y pushes it away.
    np.testing.assert_allclose([px, py], [dx / focal_length, -dy / focal_length], rtol=1e-4)
    assert abs(x) < 1e-3 * abs(dx) and abs(y) < 1e-3 * abs(dy)
    # A beam on the magnet's axis passes straight.
    np.testing.assert_allclose((R @ np.array([dx, 0, dy, 0, 0, 0, 1.0]))[:4], [dx, 0, dy, 0], rtol=1e-14, atol=1e-20)


def test_corrector_kicks_at_its_exit(x64):
    R = np.asarray(bo.corrector_map(0.05, 1e-3, -2e-3, ENERGY))
    out = R @ np.array([1e-3, 1e-4, 0, 0, 0, 0, 1.0])
    np.testing.assert_allclose(out[:4], [1e-3 + 0.05 * 1e-4, 1e-4 + 1e-3, 0, -2e-3], rtol=1e-15)
    np.testing.assert_array_equal(R[4, 5], np.asarray(bo.drift_map(0.05, ENERGY))[4, 5])


def test_lattice_table():
    lattice = bo.CLARA_S04_LATTICE
    assert len(lattice) == 24
    assert [e.name for e in lattice if e.kind != "drift"] == ["HVCOR1", "Q1", "Q2", "Q3", "Q4", "HVCOR2", "SCREEN"]
    assert lattice[4].k1 == 1.3024706840515137 and lattice[18].k1 == -1.2841088771820068
    np.testing.assert_allclose(bo.CLARA_S04_LENGTH, 3.03, atol=0.01)
    np.testing.assert_allclose([bo.SCREEN_HALF_WIDTH, bo.SCREEN_HALF_HEIGHT], [16.64e-3, 14.04e-3], rtol=1e-12)


def element_by_element_transfer(magnets, misalignments, energy):
    """The product of the 24 (unmerged) element maps of the table."""
    R, quad = jnp.eye(7), 0
    for element in bo.CLARA_S04_LATTICE:
        if element.kind == "drift":
            M = bo.drift_map(element.length, energy)
        elif element.kind == "corrector":
            angles = (magnets[0], magnets[1]) if element.name == "HVCOR1" else (0.0, 0.0)
            M = bo.corrector_map(element.length, *angles, energy)
        elif element.kind == "quadrupole":
            k1 = magnets[2 + quad] if quad < 3 else element.k1
            M = bo.quadrupole_map(element.length, k1, energy, misalignments[quad])
            quad += 1
        else:
            M = jnp.eye(7)
        R = M @ R
    return R


def test_merged_lattice_equals_element_by_element_product(x64):
    magnets, misalignments, beam = random_settings(np.random.default_rng(2), N)
    transfer = transfers(magnets, misalignments, beam.energy)
    for i in range(8):  # op by op: quicker than compiling the 24-element product
        expected = element_by_element_transfer(magnets[i], misalignments[i], beam.energy[i])
        np.testing.assert_allclose(transfer[i], expected, rtol=1e-12, atol=1e-15)
    # the screen beam is tracking through that map
    mu, cov = bo.track(*bo.beam_moments(beam), transfer)
    tracked = np.stack([mu[:, 0], np.sqrt(cov[:, 0, 0]), mu[:, 2], np.sqrt(cov[:, 2, 2])], -1)
    screen = screen_beams(magnets, misalignments, beam)
    np.testing.assert_allclose(screen, tracked, rtol=1e-12)
    # and batch dimensions broadcast without vmap
    np.testing.assert_allclose(bo.clara_s04_screen_beam(magnets, misalignments, beam), screen, rtol=1e-12, atol=1e-16)


def test_float32_by_default_and_close_to_float64():
    magnets, misalignments, beam = random_settings(np.random.default_rng(3), N)

    def f32(a):
        return jnp.asarray(a, jnp.float32)

    screen = screen_beams(f32(magnets), f32(misalignments), jax.tree.map(f32, beam))
    transfer = transfers(f32(magnets), f32(misalignments), f32(beam.energy))
    assert screen.dtype == transfer.dtype == jnp.float32 and screen.shape == (N, 4)
    assert bo.drift_map(1.0, 1e8).dtype == bo.quadrupole_map(0.1, 1.0, 1e8).dtype == jnp.float32
    assert bo.beam_moments(jax.tree.map(f32, beam))[1].dtype == jnp.float32
    with jax.enable_x64(True):
        reference = screen_beams(magnets, misalignments, beam)
        assert reference.dtype == jnp.float64
        assert bo.drift_map(1.0, 1e8).dtype == jnp.float64
        assert bo.quadrupole_map(f32(0.1), f32(2.0), f32(1e8), f32([1e-4, 0])).dtype == jnp.float32  # follows inputs
    assert np.isfinite(np.asarray(screen)).all()
    scale = np.abs(np.asarray(reference)).max(0)  # float32 rounding, relative to each column's size
    assert (np.abs(np.asarray(screen) - np.asarray(reference)) / scale).max() < 1e-5


# --------------------------------------------------------------------------------- vs Cheetah


def torch64(value):
    import torch
    return torch.as_tensor(np.asarray(value, np.float64), dtype=torch.float64)


def cheetah_segment(magnets, misalignments):
    """The CLARA S04 lattice built from Cheetah's elements (float64)."""
    import cheetah
    import torch

    elements, quad = [], 0
    for e in bo.CLARA_S04_LATTICE:
        if e.kind == "drift":
            elements.append(cheetah.Drift(length=torch64(e.length), name=e.name, dtype=torch.float64))
        elif e.kind == "corrector":
            angles = (magnets[0], magnets[1]) if e.name == "HVCOR1" else (0.0, 0.0)
            elements.append(cheetah.CombinedCorrector(length=torch64(e.length), horizontal_angle=torch64(angles[0]),
                                                      vertical_angle=torch64(angles[1]), name=e.name,
                                                      dtype=torch.float64))
        elif e.kind == "quadrupole":
            k1 = magnets[2 + quad] if quad < 3 else e.k1
            elements.append(cheetah.Quadrupole(length=torch64(e.length), k1=torch64(k1),
                                               misalignment=torch64(misalignments[quad]), name=e.name,
                                               dtype=torch.float64))
            quad += 1
        else:
            elements.append(cheetah.Screen(resolution=bo.SCREEN_RESOLUTION, pixel_size=torch64([13e-6, 13e-6]),
                                           name=e.name, dtype=torch.float64))
    return cheetah.Segment(elements)


def test_element_maps_match_cheetah(x64):
    cheetah = pytest.importorskip("cheetah")
    import torch

    species = cheetah.Species("electron", dtype=torch.float64)
    rng = np.random.default_rng(4)

    # Cheetah takes m_e from scipy.constants: CODATA 2022 in current scipy, 1.4e-9 lower (CODATA 2018) in old ones.
    np.testing.assert_allclose(species.mass_eV.item(), bo.ELECTRON_MASS_EV, rtol=2e-9)

    def check(element, ours, energy):
        theirs = element.first_order_transfer_map(torch64(energy), species).numpy()
        ours = np.array(ours)
        np.testing.assert_allclose(ours[4, 5], theirs[4, 5], rtol=1e-8)  # R56 ~ m_e^2, see above
        ours[4, 5] = theirs[4, 5]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)

    for k1 in [*rng.uniform(-30, 30, 4), 0.0, 1e-6, -1e-5]:
        length, energy = rng.uniform(0.05, 0.5), rng.uniform(80e6, 160e6)
        misalignment, angles = rng.uniform(-5e-4, 5e-4, 2), rng.uniform(-5.3e-3, 5.3e-3, 2)
        check(cheetah.Drift(length=torch64(length), dtype=torch.float64), bo.drift_map(length, energy), energy)
        check(cheetah.Quadrupole(length=torch64(length), k1=torch64(k1), misalignment=torch64(misalignment),
                                 dtype=torch.float64),
              bo.quadrupole_map(length, k1, energy, misalignment), energy)
        check(cheetah.CombinedCorrector(length=torch64(length), horizontal_angle=torch64(angles[0]),
                                        vertical_angle=torch64(angles[1]), dtype=torch.float64),
              bo.corrector_map(length, *angles, energy), energy)


def test_clara_s04_matches_cheetah(x64):
    cheetah = pytest.importorskip("cheetah")
    import torch

    magnets, misalignments, beam = random_settings(np.random.default_rng(5), N)
    screen = np.asarray(screen_beams(magnets, misalignments, beam))
    transfer = np.asarray(transfers(magnets, misalignments, beam.energy))
    # One vectorised Cheetah segment for all N settings (building N segments is slow)...
    segment = cheetah_segment(magnets.T, np.moveaxis(misalignments, 0, 1))
    incoming = cheetah.ParameterBeam.from_parameters(**{k: torch64(v) for k, v in beam._asdict().items()},
                                                     dtype=torch.float64)
    out = segment.track(incoming)
    expected = np.stack([out.mu_x.numpy(), out.sigma_x.numpy(), out.mu_y.numpy(), out.sigma_y.numpy()], -1)
    assert expected.shape == (N, 4)
    np.testing.assert_allclose(screen, expected, rtol=1e-6, atol=1e-12)
    assert (np.abs(screen - expected) / np.abs(expected)).max() < 1e-9  # in practice near float64 rounding
    species = cheetah.Species("electron", dtype=torch.float64)
    R = segment.first_order_transfer_map(torch64(beam.energy), species).numpy()
    np.testing.assert_allclose(transfer, R, rtol=1e-8, atol=1e-15)  # rtol: R56 with an older scipy's m_e
    # ...and a few unvectorised ones, in case vectorisation hid something.
    for i in range(3):
        segment = cheetah_segment(magnets[i], misalignments[i])
        incoming = cheetah.ParameterBeam.from_parameters(**{k: torch64(v[i]) for k, v in beam._asdict().items()},
                                                         dtype=torch.float64)
        out = segment.track(incoming)
        single = [out.mu_x.item(), out.sigma_x.item(), out.mu_y.item(), out.sigma_y.item()]
        np.testing.assert_allclose(screen[i], single, rtol=1e-9)
