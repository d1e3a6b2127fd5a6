"""The Euler-equation method: the residual against a closed form, Newton's solve, the value-iteration reference,
exact resume, the CLI and bad input."""

import json

import gymnasium as gym
import numpy as np
import pytest

import polyak
from polyak import Euler
from polyak.algos.collocation.value_iteration import solve_on_grid
from polyak.cli import main
from polyak.core.config import HyperparameterError
from polyak.envs.spaces import SpaceError

GAMMA = 0.99
LQ = dict(prices=[1.0], transition=[[1.0]], degradation_power=2.0)  # one price, quadratic degradation


def lq_closed_form(params, gamma=GAMMA):
    """(k0, k1) of the optimal a = k0 + k1 s1 when r = -p a - (c/2) a^2 - (q/2)(s1 - m)^2, q = 2 kappa / m^2.

    Put a = k0 + k1 s1, s1' = alpha s1 + beta a + delta, a' = k0 + k1 s1' into
    -p - c a + gamma beta [-q (s1' - m) + (alpha / beta)(p + c a')] = 0: the s1-coefficient gives
    gamma alpha beta c k1^2 + (gamma alpha^2 c - c - gamma beta^2 q) k1 - gamma alpha beta q = 0, whose negative
    root keeps alpha + beta k1 inside (-1, 1); the constant term is then linear in k0.
    """
    c, q, p = params.power_cost, 2 * params.degradation_cost / params.soc_mid**2, params.prices[0]
    al, be, de, m = params.alpha, params.beta, params.delta, params.soc_mid
    A, B, C = gamma * al * be * c, gamma * al**2 * c - c - gamma * be**2 * q, -gamma * al * be * q
    k1 = (-B - np.sqrt(B * B - 4 * A * C)) / (2 * A)
    k0 = (p + gamma * be * q * (de - m) - gamma * al * p - gamma * al * c * k1 * de) / (
        -c - gamma * be**2 * q + gamma * al * c + gamma * al * be * c * k1)
    assert abs(al + be * k1) < 1
    return k0, k1


def test_the_euler_residual_vanishes_at_the_linear_quadratic_closed_form_and_newton_finds_it():
    env = gym.make("polyak/Storage-v0", **LQ)
    k0, k1 = lq_closed_form(env.unwrapped.params)
    model = Euler(env=env, degree=3, eval_episodes=0, gamma=GAMMA)
    fresh = model.learner

    def residual_max(a0, a1):  # pi(s1) = a0 + a1 s1 = (a0 + a1 / 2) T_0 + (a1 / 2) T_1(2 s1 - 1)
        model.learner = fresh._replace(theta=np.array([[a0 + a1 / 2, a1 / 2, 0.0, 0.0]], np.float32))
        return model.euler_errors()["euler_residual_max"]  # on 1001 states in [0, 1]

    assert residual_max(k0, k1) < 2e-5
    assert residual_max(k0, 1.1 * k1) > 0.1  # a policy 10% too steep violates it
    assert residual_max(k0 + 0.01, k1) > 0.01  # so does one shifted by 0.01
    # Newton's method from pi = 0 finds the line: the cubic's higher coefficients vanish
    model.learner = fresh
    model.learn(10**5)
    assert model.converged and int(model.learner.iteration) <= 10
    np.testing.assert_allclose(np.asarray(model.learner.theta)[0], [k0 + k1 / 2, k1 / 2, 0.0, 0.0], atol=1e-5)
    action, _ = model.predict(np.array([[0.2, 1.0], [0.7, 1.0]]))
    np.testing.assert_allclose(action[:, 0], k0 + k1 * np.array([0.2, 0.7]), atol=1e-5)


def test_value_iteration_agrees_with_the_closed_form():
    """No derivative in value iteration: it checks the Euler equation's derivation (its signs, the alpha/beta term)."""
    env = gym.make("polyak/Storage-v0", **LQ).unwrapped
    k0, k1 = lq_closed_form(env.params)
    solution = solve_on_grid(env.env, env.params, GAMMA, n_grid=401)
    assert solution.interior.all() and solution.bellman_residual <= 1e-10
    assert np.abs(solution.policy[:, 0] - (k0 + k1 * solution.s1)).max() < 1e-3  # measured 3.6e-4 (h = 2.5e-3)


def test_policy_matches_value_iteration_on_the_storage_env():
    env = gym.make("polyak/Storage-v0").unwrapped
    reference = solve_on_grid(env.env, env.params, GAMMA, n_grid=1001)
    assert reference.interior.all()  # no bound binds at the optimum: the Euler equation holds everywhere
    model = Euler(env="polyak/Storage-v0", eval_episodes=0, gamma=GAMMA).learn(10**5)
    assert model.converged
    grid = reference.s1
    actions = np.stack([model.predict(np.stack([grid, np.full_like(grid, level)], 1))[0][:, 0]
                        for level in reference.levels], axis=1)
    error = np.abs(actions - reference.policy)
    assert error.max() < 1e-3 and error.mean() < 2e-4, (error.max(), error.mean())  # measured 2.5e-4, 4.9e-5
    # the policy is far from linear and depends on the price: what the test could not see with a line
    assert np.ptp(reference.policy[500]) > 0.2
    errors = model.euler_errors()
    assert errors["euler_error_action_max"] < 1e-3


def test_resume_is_bit_exact_and_a_loaded_model_acts_without_the_env(tmp_path):
    make = lambda: Euler(env="polyak/Storage-v0", degree=6, eval_episodes=0, seed=3)  # noqa: E731
    straight = make().learn(10**5)
    first = make()
    first.learn(3 * first.spec.transitions_per_iteration)
    assert int(first.learner.iteration) == 3 and not first.converged
    first.save(tmp_path / "euler.polyak")
    resumed = Euler.load(tmp_path / "euler.polyak", env="polyak/Storage-v0").learn(10**5)
    for a, b in zip(straight.learner, resumed.learner):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed.num_timesteps == straight.num_timesteps and resumed.converged
    bare = polyak.load(tmp_path / "euler.polyak")
    obs = np.array([[0.1, 0.2], [0.5, 2.5], [0.9, 1.0]], np.float32)
    np.testing.assert_array_equal(bare.predict(obs)[0], first.predict(obs)[0])
    with pytest.raises(ValueError, match="needs the model"):
        bare.euler_errors()
    with pytest.raises(ValueError, match="differs from the one"):
        Euler.load(tmp_path / "euler.polyak", env=gym.make("polyak/Storage-v0", prices=[0.1, 1.0, 2.5]))


def test_polyak_train_euler_writes_a_run_folder(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "euler", "--env", "polyak/Storage-v0", "--steps", "100000", "--run-dir", str(run),
                 "--no-progress", "--eval-episodes", "2", "--set", "degree=6"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["euler_residual_max"] < 0.05 and result["newton_iterations"] >= 3
    rows = (run / "metrics.csv").read_text().splitlines()
    assert "residual_max" in rows[0] and len(rows) - 1 == result["newton_iterations"]
    assert (run / "episodes.csv").read_text().count("\n") == 1 + 8 * result["newton_iterations"]
    assert isinstance(polyak.load(run / "model.polyak"), Euler)


def test_bad_input_is_named():
    with pytest.raises(SpaceError, match="Euler-class JAX env"):
        Euler(env="Pendulum-v1")
    with pytest.raises(HyperparameterError, match="ChebyshevPolicy"):
        Euler("MlpPolicy", "polyak/Storage-v0")
    with pytest.raises(HyperparameterError, match="n_nodes must be >= degree"):
        Euler(env="polyak/Storage-v0", degree=6, n_nodes=5)
    with pytest.raises(HyperparameterError, match="policy_kwargs must be empty"):
        Euler(env="polyak/Storage-v0", policy_kwargs=dict(net_arch=[64]))
    with pytest.raises(HyperparameterError, match="unknown hyperparameter.*learning_rate.*known: .*degree"):
        Euler(env="polyak/Storage-v0", learning_rate=1e-3)
