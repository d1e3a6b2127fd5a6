"""The TransverseTuning twin's set-up shared by tests/envs/test_transverse_tuning.py and tests/accel/test_cheetah_env.py
(a module, not a conftest: the two folders have none in common but tests/): fixed trial parameters and the screen
beam the twin's lattice tracks."""

import jax.numpy as jnp

from polyak.envs.beam_optics import IncomingBeam, clara_s04_screen_beam
from polyak.envs.transverse_tuning import TransverseTuningParams

FIXED_BEAM = (100e6, 1e-3, 2e-5, -5e-4, -1e-5, 2e-4, 2e-5, 1.5e-4, 1e-5, 1e-5, 5e-4)  # IncomingBeam field order
FIXED_MISALIGNMENTS = (1e-4, -2e-4, 0.0, 3e-4, -1e-4, 0.0, 2e-4, 1e-4)  # (dx, dy) of Q1, Q2, Q3, Q4 [m]


def fixed_params(**kw) -> TransverseTuningParams:
    """A trial with nothing drawn but the magnets: FIXED_BEAM, FIXED_MISALIGNMENTS and a fixed target."""
    return TransverseTuningParams(incoming_beam=FIXED_BEAM, misalignments=FIXED_MISALIGNMENTS,
                                  target=(1e-4, 2e-4, -1e-4, 1e-4), **kw)


def screen_beam(magnets, misalignments, incoming):
    """The beam on the screen (mu_x, sigma_x, mu_y, sigma_y) that the twin's lattice tracks for these magnet
    settings, (4, 2) misalignments (or the 8 values flat) and the 11 values of the incoming beam; float64 inputs
    stay float64 under jax.enable_x64."""
    return clara_s04_screen_beam(jnp.asarray(magnets), jnp.asarray(misalignments).reshape(4, 2),
                                 IncomingBeam(*jnp.asarray(incoming)))
