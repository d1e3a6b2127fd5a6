"""MOPO: Model-based Offline Policy Optimization (Yu et al. 2020). SAC trained mostly on short rollouts of a learned
dynamics ensemble, whose rewards are lowered where the model is unsure.

Before the first update (`MOPO.learn`, once):
  0. model         fit the world model (`core.world_model`, `model=`) to the dataset:
                     "mlp"      the probabilistic ensemble (`core.dynamics`: Gaussian heads over [s' - s, r], a
                                held-out fraction picks the elites; MOPO's)
                     "koopman"  the stable Koopman ensemble (`core.koopman`: z = phi(s), z' = K z + B psi(a) + a
                                bounded residual, ||K||_2 <= 1, decoder and reward head; on the episodes' H-step windows)
                   if the dataset holds terminations, a classifier d(s, a, s') learns them (otherwise model rollouts
                   never terminate)
Per gradient step, on a batch (s, a, r, s', d) of B real rows:
  1. branch rollouts   from the batch's first `rollouts_per_step` states, h steps of a ~ pi(.|s) through a random
                   rolling-out member i per row:  (s', r^) from member i  (mlp: ~ N(mu_i(s, a), sigma_i(s, a)^2)),
                   d = d(s, a, s'),  penalised reward  r~ = r^ - lambda u(s, a),
                     u = max_i ||sigma_i(s, a)||              (`penalty="aleatoric"`, MOPO's; the default for mlp)
                       = max_i ||mu_i(s, a) - mean_j mu_j||   (`"disagreement"`, over s'; the default for koopman)
                       = ||std_i mu_i(s, a)||                 (`"epistemic"`)
                   a rollout's rows are kept up to and including its first terminal step, and before its first step
                   with u > `max_uncertainty` (off by default); they go into the model buffer (a ring holding the
                   last `model_retain_steps` steps' rollouts)
  2. mixed batch   round(f B) of the real rows and B - round(f B) rows sampled from the model buffer
  3. SAC           the soft actor-critic update (`offpolicy.soft`) on the mixed batch

MOPO's code rolls out 50,000 dataset states every 1,000 gradient steps with the policy of that moment; here the
same number per step (50) is rolled out at every step with the current policy, from states of the real batch
(uniform over the dataset, like MOPO's), so the rollouts, the model buffer and the update are one pure function of
the learner: the offline chunks, online fine-tuning (`learn(n, online=True)`, rollouts also from online states; the
model is not refitted) and checkpoints need nothing MOPO-specific. Observations are not normalised (as in MOPO's
SAC): model rollouts live in the env's observation units, the world model standardises its own inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from polyak.algos.offline.host import OfflineAlgorithm
from polyak.algos.offline.learner import OfflineConfig
from polyak.algos.offpolicy.soft import SoftAgent, SoftConfig, SoftState
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.dynamics import DynamicsEnsemble
from polyak.core.koopman import KoopmanEnsemble
from polyak.core.networks import MLP
from polyak.core.optim import gradient_step
from polyak.core.types import Transition, UpdateInfo
from polyak.core.world_model import PENALTIES, EnsembleModel, KoopmanModel, WorldModel
from polyak.data.buffer import ReplayBuffer, buffer_add, buffer_init, buffer_sample

TERMINATION_HIDDEN = (64, 64)  # the termination classifier d(s, a, s')
TERMINATION_BATCH = 256


@dataclass(frozen=True)
class MOPOConfig(OfflineConfig):
    """SAC as in MOPO's code (softlearning): Adam 3e-4 for actor, critics and temperature, [256, 256], batch 256,
    gamma 0.99, tau 0.005, alpha automatic with H_target = -dim(A); MOPO's model and rollout settings."""

    normalize_obs: bool = False  # must stay False: model rollouts are in the env's units (MOPO's SAC: none either)
    ent_coef: str | float = "auto"  # "auto", "auto_<initial value>" or a fixed alpha > 0
    target_entropy: str | float = "auto"  # "auto" means -dim(A)
    rollout_length: int = 5  # h (MOPO's D4RL configs: 1 or 5, per task)
    penalty_coef: float = 1.0  # lambda (MOPO's D4RL configs: 0.5 to 5, per task)
    model: str = "mlp"  # the world model: "mlp" (MOPO's probabilistic ensemble) or "koopman" (core.koopman's ensemble)
    penalty: str = "auto"  # u (world_model): aleatoric|epistemic|disagreement; auto: mlp aleatoric, koopman disagreement
    max_uncertainty: float = math.inf  # a rollout ends before its first step with u above this (inf: never)
    real_ratio: float = 0.05  # f: fraction of each batch taken from the real data (MOPO: 0.05)
    rollouts_per_step: int = 50  # rollouts started per gradient step (MOPO: 50,000 every 1,000 steps)
    model_retain_steps: int = 5000  # the model buffer holds the last N steps' rollouts (MOPO: 5 epochs of 1,000)
    model_members: int = 7  # ensemble size (MOPO: 7)
    model_elites: int = 5  # mlp: members with the lowest held-out error that roll out (MOPO: 5); koopman: all roll out
    model_hidden: tuple[int, ...] = (200, 200, 200, 200)  # mlp: each member's MLP (MOPO: 4 x 200, swish)
    model_learning_rate: float = 1e-3  # Adam(W) step size of the ensemble (MOPO: 1e-3)
    model_train_steps: int = 5000  # ensemble Adam steps (MOPO: until the held-out loss stops improving)
    model_holdout: float = 0.1  # mlp: fraction of the dataset held out to rank the members (MOPO: 0.2, <= 1000 rows)
    koopman_latent_dim: int = 32  # koopman: size of the latent state z = phi(s)
    koopman_hidden: tuple[int, ...] = (128, 128)  # koopman: encoder, decoder and reward head widths
    koopman_horizon: int = 20  # koopman: H, the windows its multi-step prediction loss rolls over
    termination_steps: int = 2000  # Adam steps of the termination classifier (fitted only if the data terminate)

    # SoftAgent reads these: MOPO's SAC is plain SAC, without the upgrades' options
    target_update_interval: ClassVar[int] = 1
    policy_delay: ClassVar[int] = 1
    layer_norm: ClassVar[bool] = False
    dropout_rate: ClassVar[float] = 0.0
    learn_alpha = SoftConfig.learn_alpha
    initial_alpha = SoftConfig.initial_alpha
    may_be_infinite = frozenset({"max_uncertainty"})

    @property
    def penalty_kind(self) -> str:
        """The uncertainty u that `penalty="auto"` stands for."""
        return self.penalty if self.penalty != "auto" else ("aleatoric" if self.model == "mlp" else "disagreement")

    def validate(self) -> None:
        super().validate()
        _ = self.initial_alpha  # raises on an invalid ent_coef
        need(self.target_entropy == "auto" or isinstance(self.target_entropy, (int, float)),
             f"target_entropy must be 'auto' or a number, got {self.target_entropy!r}")
        need(not self.normalize_obs, "MOPO rolls its model out in the env's observation units: normalize_obs must be "
                                     "False (the dynamics ensemble standardises its own inputs)")
        need(self.actor_learning_rate == self.learning_rate,
             f"MOPO's SAC uses one Adam step size (learning_rate) for actor and critics; got actor_learning_rate "
             f"{self.actor_learning_rate} != learning_rate {self.learning_rate}: set learning_rate only")
        need(self.rollout_length >= 1, f"rollout_length must be >= 1, got {self.rollout_length}")
        need(self.penalty_coef >= 0, f"penalty_coef must be >= 0, got {self.penalty_coef}")
        need(self.model in ("mlp", "koopman"), f"model must be 'mlp' or 'koopman', got {self.model!r}")
        need(self.penalty in ("auto", *PENALTIES), f"penalty must be 'auto', 'aleatoric', 'epistemic' or "
                                                   f"'disagreement', got {self.penalty!r}")
        need(not (self.model == "koopman" and self.penalty == "aleatoric"),
             "penalty='aleatoric' needs the probabilistic ensemble: the Koopman members are deterministic; with "
             "model='koopman' use penalty 'disagreement' (the default, 'auto') or 'epistemic'")
        need(self.max_uncertainty > 0, f"max_uncertainty must be > 0 (inf: never stop), got {self.max_uncertainty}")
        need(0 <= self.real_ratio < 1, f"real_ratio must be in [0, 1), got {self.real_ratio}")
        need(1 <= self.rollouts_per_step <= self.batch_size,
             f"rollouts_per_step must be in [1, batch_size] = [1, {self.batch_size}] (rollouts start from the real "
             f"batch's states), got {self.rollouts_per_step}")
        need(self.model_retain_steps >= 1, f"model_retain_steps must be >= 1, got {self.model_retain_steps}")
        need(self.model_members >= 1, f"model_members must be >= 1, got {self.model_members}")
        need(self.model != "mlp" or 1 <= self.model_elites <= self.model_members,
             f"need 1 <= model_elites <= model_members, got {self.model_elites} and {self.model_members}")
        need(all(w >= 1 for w in self.model_hidden), f"model_hidden widths must be >= 1, got {self.model_hidden}")
        need(self.model_learning_rate > 0, f"model_learning_rate must be > 0, got {self.model_learning_rate}")
        need(self.model_train_steps >= 1 and self.termination_steps >= 1,
             "model_train_steps and termination_steps must be >= 1")
        need(0 < self.model_holdout < 1, f"model_holdout must be in (0, 1), got {self.model_holdout}")
        need(self.koopman_latent_dim >= 1, f"koopman_latent_dim must be >= 1, got {self.koopman_latent_dim}")
        need(len(self.koopman_hidden) >= 1 and all(w >= 1 for w in self.koopman_hidden),
             f"koopman_hidden must be one or more widths >= 1, got {self.koopman_hidden}")
        need(self.koopman_horizon >= 1, f"koopman_horizon must be >= 1, got {self.koopman_horizon}")


def mopo_reward(reward: jax.Array, uncertainty: jax.Array, penalty_coef: float) -> jax.Array:
    """r~ = r^ - lambda u(s, a): the model's reward lowered by its uncertainty."""
    return reward - penalty_coef * uncertainty


def penalised_rollout(policy: Callable, model_step: Callable, terminal: Callable, obs: jax.Array, key: jax.Array,
                      horizon: int, penalty_coef: float, max_uncertainty: float = math.inf
                      ) -> tuple[Transition, jax.Array, jax.Array]:
    """`horizon` model steps from the states `obs` (n, d), all rows at once: a = policy(s, key),
    (s', r^, u) = model_step(s, a, key), d = terminal(s, a, s'), row (s, a, r^ - lambda u, s', d).
    Returns the rows (leading axes (horizon, n)), `valid` (horizon, n) — step k of a rollout is valid while none of
    its earlier steps terminated, so the terminal step itself is kept, and while u <= `max_uncertainty` (the step
    where u first exceeds it and all later ones are dropped) — and u (horizon, n)."""
    def step(carry, k):
        s, alive = carry
        k_act, k_model = jax.random.split(k)
        a = policy(s, k_act)
        s_next, r, u = model_step(s, a, k_model)
        d = terminal(s, a, s_next)
        row = Transition(s, a, mopo_reward(r, u, penalty_coef), s_next, d.astype(jnp.float32))
        alive = alive & (u <= max_uncertainty)
        return (s_next, alive & ~d), (row, alive, u)

    alive = jnp.ones(obs.shape[:1], bool)
    _, (rows, valid, u) = jax.lax.scan(step, (obs, alive), jax.random.split(key, horizon))
    return rows, valid, u


def mixed_batch(real: Transition, model_buffer: ReplayBuffer, key: jax.Array, n_real: int) -> Transition:
    """The first `n_real` rows of the real batch, then B - n_real rows sampled uniformly from the model buffer."""
    model = buffer_sample(model_buffer, key, real.reward.shape[0] - n_real)
    return jax.tree.map(lambda x, y: jnp.concatenate([x[:n_real], y]), real, model)


class MOPOState(NamedTuple):
    sac: SoftState
    model: Any  # the world model's state (core.world_model: EnsembleModel's or KoopmanModel's)
    termination: Any  # parameters of the classifier d(s, a, s') (a logit)
    terminates: jax.Array  # 1 when the dataset holds terminations (the classifier is used), else 0
    model_buffer: ReplayBuffer
    model_mse: jax.Array  # every member's held-out mean squared error (NaN before the fit)
    model_ready: jax.Array  # 1 once step 0 has fitted the model


@dataclass(frozen=True)
class MOPOAgent(SoftAgent):
    cfg: MOPOConfig

    @cached_property
    def world_model(self) -> WorldModel:
        cfg = self.cfg
        if cfg.model == "koopman":
            return KoopmanModel(KoopmanEnsemble(self.obs_dim, self.act_dim, cfg.koopman_latent_dim, cfg.model_members,
                                                cfg.koopman_hidden, horizon=cfg.koopman_horizon,
                                                learning_rate=cfg.model_learning_rate), cfg.penalty_kind)
        return EnsembleModel(DynamicsEnsemble(self.obs_dim, self.act_dim, cfg.model_members, cfg.model_elites,
                                              cfg.model_hidden, cfg.model_learning_rate), cfg.penalty_kind,
                             cfg.model_holdout)

    @cached_property
    def termination_net(self) -> MLP:
        return MLP(TERMINATION_HIDDEN, 1)

    @property
    def n_real(self) -> int:
        return round(self.cfg.real_ratio * self.cfg.batch_size)

    @property
    def model_buffer_rows(self) -> int:
        return self.cfg.rollouts_per_step * self.cfg.rollout_length * self.cfg.model_retain_steps

    def init(self, key: jax.Array) -> MOPOState:
        k_sac, k_model, k_term = jax.random.split(key, 3)
        termination = self.termination_net.init(k_term, jnp.zeros((1, 2 * self.obs_dim + self.act_dim)))
        return MOPOState(SoftAgent.init(self, k_sac), self.world_model.init(k_model), termination,
                         jnp.zeros((), jnp.float32), buffer_init(self.model_buffer_rows, self.obs_dim, self.act_dim),
                         jnp.full((self.cfg.model_members,), jnp.nan, jnp.float32), jnp.zeros((), jnp.int32))

    # -- the policy and critics are SAC's --------------------------------------------------------
    def act(self, state: MOPOState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return SoftAgent.act(self, state.sac, obs, key, deterministic)

    def q_values(self, state: MOPOState, obs: jax.Array, action: jax.Array) -> jax.Array:
        return SoftAgent.q_values(self, state.sac, obs, action)

    def entropy_temperature(self, state: MOPOState) -> jax.Array:
        return SoftAgent.entropy_temperature(self, state.sac)

    def policy_entropy(self, state: MOPOState, obs: jax.Array, key: jax.Array, n_samples: int = 256) -> jax.Array:
        return SoftAgent.policy_entropy(self, state.sac, obs, key, n_samples)

    # -- step 0: the model ----------------------------------------------------------------------
    def fit_model(self, state: MOPOState, rows: Transition, key: jax.Array,
                  episode: np.ndarray | None = None) -> MOPOState:
        """The world model on the rows (s, a, r, s'), in dataset order (mlp: elites by held-out error; koopman: on the
        episodes' H-step windows, cut by `episode`, the rows' episode ids, where the data has them); the termination
        classifier if any row terminates. Host-side (a few jitted calls); deterministic given `key`."""
        k_model, k_term = jax.random.split(key)
        model, mse = self.world_model.fit(k_model, rows, self.cfg.model_train_steps, episode)
        terminates = bool(np.any(np.asarray(rows.terminated) > 0))
        termination = state.termination
        if terminates:
            x = jnp.concatenate([jnp.asarray(rows.obs), jnp.asarray(rows.action), jnp.asarray(rows.next_obs)], -1)
            termination = self._fit_termination(termination, x, jnp.asarray(rows.terminated, jnp.float32), k_term)
        return state._replace(model=model, termination=termination, terminates=jnp.asarray(terminates, jnp.float32),
                              model_mse=jnp.asarray(mse, jnp.float32), model_ready=jnp.ones((), jnp.int32))

    @partial(jax.jit, static_argnums=0)
    def _fit_termination(self, params, x: jax.Array, done: jax.Array, key: jax.Array):
        """Logistic regression of d on (s, a, s'): mean binary cross-entropy, Adam 1e-3, `termination_steps` steps."""
        optimizer = optax.adam(1e-3)

        def step(carry, k):
            params, opt_state = carry
            idx = jax.random.randint(k, (TERMINATION_BATCH,), 0, x.shape[0])

            def loss_fn(p):
                logit = self.termination_net.apply(p, x[idx])[..., 0]
                return optax.sigmoid_binary_cross_entropy(logit, done[idx]).mean(), None

            params, opt_state, loss, _ = gradient_step(optimizer, loss_fn, params, opt_state)
            return (params, opt_state), loss

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)),
                                      jax.random.split(key, self.cfg.termination_steps))
        return params

    def rollout(self, state: MOPOState, obs: jax.Array, key: jax.Array) -> tuple[Transition, jax.Array, jax.Array]:
        """Step 1 for the states `obs`: penalised rollouts of the current policy through the world model."""
        cfg = self.cfg

        def policy(s, k):
            return self.sample_action(state.sac.actor_params, s, k)[0]

        def model_step(s, a, k):  # (s', r^, u) from a random member that rolls out
            return self.world_model.step(state.model, s, a, k)

        def terminal(s, a, s_next):
            logit = self.termination_net.apply(state.termination, jnp.concatenate([s, a, s_next], -1))[..., 0]
            return (logit > 0) & (state.terminates > 0)

        return penalised_rollout(policy, model_step, terminal, obs, key, cfg.rollout_length, cfg.penalty_coef,
                                 cfg.max_uncertainty)

    # -- steps 1-3 ----------------------------------------------------------------------------
    def update(self, state: MOPOState, batch: Transition, key: jax.Array) -> tuple[MOPOState, dict, UpdateInfo]:
        k_rollout, k_mix, k_sac = jax.random.split(key, 3)
        # 1. branch rollouts from real states, penalised rewards r~ = r^ - lambda u, into the model buffer
        rows, valid, u = self.rollout(state, batch.obs[: self.cfg.rollouts_per_step], k_rollout)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731  (horizon, n, ...) -> (horizon n, ...)
        model_buffer = buffer_add(state.model_buffer, jax.tree.map(flat, rows), flat(valid))
        # 2. the mixed batch: round(f B) real rows, the rest from the model buffer
        mixed = mixed_batch(batch, model_buffer, k_mix, self.n_real)
        if math.isfinite(self.cfg.max_uncertainty):
            # all real rows while the model buffer is empty (every rollout so far stopped at its first step)
            mixed = jax.tree.map(lambda m, r: jnp.where(model_buffer.size > 0, m, r), mixed, batch)
        # 3. SAC's update on it
        sac, metrics, info = SoftAgent.update(self, state.sac, mixed, k_sac)
        valid_f = valid.astype(jnp.float32)
        n_valid = jnp.maximum(valid_f.sum(), 1.0)
        metrics = {**metrics, "penalty_mean": (u * valid_f).sum() / n_valid,
                   "model_reward_mean": (rows.reward * valid_f).sum() / n_valid,
                   "rollout_length_mean": valid_f.sum(0).mean(),
                   "model_mse": state.model_mse[self.world_model.members(state.model)].mean()}
        # the monitor's bound max|r| / (1 - gamma) knows only the real rewards: widen it by the model's
        bonus = info.soft_bonus + jnp.abs(mixed.reward[self.n_real:]).max(initial=0.0)
        return state._replace(sac=sac, model_buffer=model_buffer), metrics, info._replace(soft_bonus=bonus)


@register(family="offline", action_kinds=("Box",), jitted_loop=False)
class MOPO(OfflineAlgorithm):
    """MOPO. ``MOPO("MlpPolicy", dataset=ID, rollout_length=5, penalty_coef=1.0)``; `learn` fits the model first."""

    name = "mopo"
    config_cls = MOPOConfig
    agent_cls = MOPOAgent

    def learn(self, total_timesteps: int, *args: Any, **kwargs: Any):
        """Step 0 once (fit the dynamics model to the dataset), then `OfflineAlgorithm.learn` (offline gradient
        steps, or `online=True`)."""
        self._ensure_data()
        if int(self.learner.agent.model_ready) == 0:
            buffer = self.learner.buffer  # before any online step: exactly the dataset's rows
            rows = jax.tree.map(lambda x: np.asarray(x)[: int(buffer.size)], buffer.data)
            key, k_fit = jax.random.split(self.learner.key)
            episode = getattr(self.data, "episode", None)  # an OfflineData's ids; a ReplayBuffer has none
            episode = episode if episode is not None and len(episode) == int(buffer.size) else None
            agent = self.agent.fit_model(self.learner.agent, rows, k_fit, episode)
            self.learner = jax.tree.map(jnp.array, self.learner._replace(agent=agent, key=key))
            if self.verbose:
                mse = np.asarray(agent.model_mse)
                print(f"MOPO: {self.config.model} world model fitted; one-step MSE per member "
                      f"{np.round(mse, 5).tolist()}, members rolling out "
                      f"{np.asarray(self.agent.world_model.members(agent.model)).tolist()}", flush=True)
        return super().learn(total_timesteps, *args, **kwargs)
