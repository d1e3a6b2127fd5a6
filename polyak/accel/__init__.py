"""Accelerator tasks: classical controllers and the challenge-style evaluation.

`controllers` holds the baselines (do nothing, random, Nelder-Mead, a random-perturbation tuner, the SVD
orbit controller) and an adapter that makes a trained polyak model a controller; all share one interface:

    controller.reset(observation, info)      at the start of a trial
    controller.act(observation, info)        -> action in the environment's own units

`evaluation.evaluate` runs seeded, fixed trials of a task with any controller and computes the
challenge metrics (final/best MAE, steps to 20 um, steps to convergence, magnet change, score).

`cheetah_env` is the same task tracked by Cheetah in the RL4AA'26 challenge's conventions (Dict observation,
its wrappers); `transfer.TwinPolicyAdapter` lets a model trained on the JAX twin act in such an env.
"""

from polyak.accel.controllers import (
                                      Controller,
                                      DoNothing,
                                      NelderMead,
                                      PolicyController,
                                      RandomController,
                                      RandomPerturbation,
                                      SVDController,
                                      make_controller,
)
from polyak.accel.cheetah_env import CheetahTransverseTuning, challenge_wrappers
from polyak.accel.evaluation import TASKS, evaluate
from polyak.accel.transfer import TwinPolicyAdapter, TwinView

__all__ = ["Controller", "DoNothing", "NelderMead", "PolicyController", "RandomController", "RandomPerturbation",
           "SVDController", "make_controller", "TASKS", "evaluate", "CheetahTransverseTuning", "challenge_wrappers",
           "TwinPolicyAdapter", "TwinView"]
