"""What the fitted Q-iterations share (FQI, amortised FQI, NFQCA): outer iterations over the offline loop's
gradient steps, the frozen Q_k of an iteration, and the explicit maximiser's settings.

Fitted Q-iteration alternates two steps: targets y = r + gamma (1 - d) V_k(s') from the frozen Q_k, then a
regression of Q_{k+1} onto them. Here an outer iteration is a fixed number of the offline loop's gradient
steps (`learn(total_timesteps)` counts them, so total_timesteps / steps-per-iteration iterations run): at the
first step of an iteration the online critic is copied whole into Q_k (no Polyak averaging; `tau` is unused),
and the online critic goes on from there (a warm start: Q_{k+1} starts at Q_k, its Adam state carries over).
Targets are computed on each minibatch with the frozen Q_k, which gives the same regression targets as
computing them for the whole dataset at the start of the iteration. With n_critics > 1 every critic regresses
onto the same y and q(s, a) = min_j Q_j(s, a) (pessimism against actions the data never tried).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from polyak.algos.offline.learner import OfflineAgent, OfflineConfig
from polyak.core.config import need
from polyak.core.maximize import Argmax, cem, gradient_ascent

MAXIMIZERS = ("gradient", "cem")
DETERMINISTIC_KEY = 0  # greedy actions use this key for the maximiser's restarts: the same obs, the same action


@dataclass(frozen=True)
class FittedQConfig(OfflineConfig):
    """Offline hyperparameters plus the explicit maximiser of max_a Q(s, a) (`polyak.core.maximize`)."""

    iteration_steps: int = 200  # gradient steps per outer iteration (fitting Q_{k+1} to the targets of Q_k)
    maximizer: str = "gradient"  # "gradient": projected gradient ascent with restarts; "cem": CEM over actions
    ascent_restarts: int = 4  # random starts per state (the policy's action is one of them where there is a policy)
    ascent_steps: int = 10  # Adam steps per start at most
    ascent_step_size: float = 0.1  # Adam step size in action units ([-1, 1])
    ascent_tol: float = 1e-2  # stop when no Q value moved by this much in one step (reward units; 0: never)
    cem_population: int = 64  # CEM samples per state and round
    cem_elites: int = 6  # CEM: the best samples the Gaussian is refitted to
    cem_iterations: int = 4  # CEM rounds

    def validate(self) -> None:
        super().validate()
        check_tau_unused(self)
        need(self.iteration_steps >= 1, f"iteration_steps must be >= 1, got {self.iteration_steps}")
        need(self.maximizer in MAXIMIZERS, f"maximizer must be one of {', '.join(MAXIMIZERS)}, got {self.maximizer!r}")
        need(self.ascent_restarts >= 1 and self.ascent_steps >= 1,
             f"ascent_restarts and ascent_steps must be >= 1, got {self.ascent_restarts} and {self.ascent_steps}")
        need(self.ascent_step_size > 0 and self.ascent_tol >= 0,
             f"ascent_step_size must be > 0 and ascent_tol >= 0, got {self.ascent_step_size} and {self.ascent_tol}")
        need(1 <= self.cem_elites <= self.cem_population and self.cem_iterations >= 1,
             f"CEM needs 1 <= cem_elites <= cem_population and cem_iterations >= 1, got {self.cem_elites}, "
             f"{self.cem_population} and {self.cem_iterations}")


@dataclass(frozen=True)
class FittedQAgent(OfflineAgent):
    """q(s, a) = min_j Q_j(s, a), its explicit maximiser, and Q_k <- Q at the start of an iteration."""

    cfg: FittedQConfig

    def q(self, critic_params, obs: jax.Array, action: jax.Array) -> jax.Array:
        return self.critic.apply(critic_params, obs, action).min(axis=0)

    def argmax_q(self, critic_params, obs: jax.Array, key: jax.Array, init: jax.Array | None = None) -> Argmax:
        """max_a q(s, a) over [-1, 1]^d for each row of obs, by the configured maximiser (`init`: one start)."""
        cfg = self.cfg
        f = lambda action: self.q(critic_params, obs, action)  # noqa: E731
        shape = (obs.shape[0], self.act_dim)
        if cfg.maximizer == "cem":
            return cem(f, key, shape, init=init, population=cfg.cem_population, elites=cfg.cem_elites,
                       iterations=cfg.cem_iterations)
        return gradient_ascent(f, key, shape, init=init, restarts=cfg.ascent_restarts, max_steps=cfg.ascent_steps,
                               step_size=cfg.ascent_step_size, tol=cfg.ascent_tol)

    def greedy_key(self, key: jax.Array, deterministic: bool) -> jax.Array:
        return jax.random.PRNGKey(DETERMINISTIC_KEY) if deterministic else key


def check_tau_unused(cfg: OfflineConfig) -> None:
    need(cfg.tau == OfflineConfig.tau, f"tau is not used by fitted Q-iteration (Q_k is a whole copy at each "
                                       f"iteration), got tau={cfg.tau}")


def new_iteration(n_updates: jax.Array, steps_per_iteration: int) -> jax.Array:
    """True at the first gradient step of an outer iteration."""
    return n_updates % steps_per_iteration == 0


def freeze(online, frozen, now: jax.Array):
    """The frozen copy (Q_k, pi_k): the online parameters where `now`, else unchanged."""
    return jax.tree.map(lambda p, f: jnp.where(now, p, f), online, frozen)
