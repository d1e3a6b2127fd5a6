"""Accelerator tasks: classical controllers and the challenge-style evaluation.

`controllers` holds the baselines (do nothing, random, Nelder-Mead, the SVD orbit controller) and
an adapter that makes a trained polyak model a controller; all share one interface:

    controller.reset(observation, info)      at the start of a trial
    controller.act(observation, info)        -> action in the environment's own units

`evaluation.evaluate` runs seeded, fixed trials of a task with any controller and computes the
challenge metrics (final/best MAE, steps to 20 um, steps to convergence, magnet change, score).
"""

from polyak.accel.controllers import (
                                      Controller,
                                      DoNothing,
                                      NelderMead,
                                      PolicyController,
                                      RandomController,
                                      SVDController,
                                      make_controller,
)
from polyak.accel.evaluation import TASKS, evaluate

__all__ = ["Controller", "DoNothing", "NelderMead", "PolicyController", "RandomController", "SVDController",
           "make_controller", "TASKS", "evaluate"]
