"""World models with uncertainty (polyak.core.dynamics, polyak.core.koopman): the stability constraint, the
losses by hand, and that each model learns a small known system and knows where its data end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.core.dynamics import DynamicsEnsemble, gaussian_nll
from polyak.core.koopman import KoopmanEnsemble, make_segments, spectral_normalise


def test_spectral_normalisation_bounds_the_largest_singular_value():
    w = 5.0 * jax.random.normal(jax.random.PRNGKey(0), (6, 6))
    k = np.asarray(spectral_normalise(w))
    assert np.linalg.norm(k, 2) == pytest.approx(1.0, rel=1e-5)
    assert np.all(np.abs(np.linalg.eigvals(k)) <= 1.0 + 1e-5)  # eigenvalues in the unit disc
    small = 0.1 * np.eye(3)
    np.testing.assert_allclose(spectral_normalise(jnp.asarray(small)), small, rtol=1e-6)  # already inside: unchanged


def test_gaussian_nll_by_hand():
    mean, log_var, y = np.array([[0.5, -1.0]]), np.array([[0.2, -0.3]]), np.array([[1.0, 0.0]])
    expected = np.mean((mean - y) ** 2 * np.exp(-log_var) + log_var)
    np.testing.assert_allclose(gaussian_nll(jnp.asarray(mean), jnp.asarray(log_var), jnp.asarray(y)), expected,
                               rtol=1e-6)


def toy_transitions(rng, n, low=-1.0, high=1.0):
    """s' = s + 0.1 a + noise, r = -s^2, s in [low, high], a in [-1, 1]."""
    s = rng.uniform(low, high, (n, 1)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    return s, a, (-s[:, 0] ** 2).astype(np.float32), (s + 0.1 * a + 0.01 * rng.normal(size=(n, 1))).astype(np.float32)


def test_dynamics_ensemble_learns_and_its_disagreement_grows_off_the_data():
    model = DynamicsEnsemble(1, 1, n_members=4, n_elites=3, hidden=(32, 32), batch_size=128)
    rng = np.random.default_rng(0)
    state, mse = model.fit(jax.random.PRNGKey(0), toy_transitions(rng, 2000), n_steps=1500)
    assert np.asarray(state.elites).tolist() == np.argsort(np.asarray(mse))[:3].tolist()
    s, a, r, s2 = toy_transitions(rng, 500)
    next_obs, reward, aleatoric, epistemic = model.step(state, jnp.asarray(s), jnp.asarray(a), jax.random.PRNGKey(1))
    assert np.mean((np.asarray(next_obs) - s2) ** 2) < 3e-3  # the noise variance is 1e-4; s' - s spans 0.2
    assert np.mean((np.asarray(reward) - r) ** 2) < 0.02  # r spans [-1, 0]
    far = jnp.full((100, 1), 4.0)  # four times beyond the data
    _, _, _, epistemic_far = model.step(state, far, jnp.zeros((100, 1)), jax.random.PRNGKey(2))
    assert float(np.median(epistemic_far)) > 5 * float(np.median(epistemic))


def linear_episodes(rng, n_episodes, length):
    """s' = A s + B a, A a damped rotation (|eigenvalues| = 0.95), r = -|s|^2."""
    theta = 0.3
    A = 0.95 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], np.float32)
    B = np.array([[0.0], [0.5]], np.float32)
    episodes = []
    for _ in range(n_episodes):
        s = [rng.uniform(-1, 1, 2).astype(np.float32)]
        actions = rng.uniform(-1, 1, (length, 1)).astype(np.float32)
        for t in range(length):
            s.append(A @ s[-1] + B @ actions[t])
        obs = np.stack(s)
        episodes.append({"observations": obs, "actions": actions, "rewards": -(obs[:-1] ** 2).sum(-1)})
    return episodes


def test_make_segments_masks_steps_past_the_episode_end():
    ep = {"observations": np.arange(4, dtype=np.float32)[:, None], "actions": np.ones((3, 1), np.float32),
          "rewards": np.array([1.0, 2.0, 3.0], np.float32)}
    seg = make_segments([ep], horizon=2)
    assert seg.obs.shape == (3, 3, 1) and seg.mask.tolist() == [[1, 1], [1, 1], [1, 0]]
    assert seg.obs[2, :, 0].tolist() == [2.0, 3.0, 3.0] and seg.reward[2].tolist() == [3.0, 0.0]
    with pytest.raises(ValueError, match="T \\+ 1 observations"):
        make_segments([{**ep, "rewards": np.ones(2)}], horizon=2)


def test_koopman_model_predicts_a_linear_system_over_many_steps_and_stays_stable():
    rng = np.random.default_rng(0)
    model = KoopmanEnsemble(2, 1, latent_dim=4, n_members=2, hidden=(32,), residual_hidden=(16,), horizon=5,
                            batch_size=64, learning_rate=3e-3)
    state, losses = model.fit(jax.random.PRNGKey(0), make_segments(linear_episodes(rng, 40, 30), 5), n_steps=800)
    assert float(np.mean(losses[-50:])) < 0.1 * float(np.mean(losses[:50]))
    assert np.all(np.linalg.norm(np.asarray(model.k_matrices(state)), 2, axis=(1, 2)) <= 1.0 + 1e-4)
    held_out = linear_episodes(rng, 8, 20)
    obs0 = jnp.asarray(np.stack([ep["observations"][0] for ep in held_out]))
    actions = jnp.asarray(np.stack([ep["actions"] for ep in held_out]))
    pred, reward = model.rollout(state, obs0, actions)
    truth = np.stack([ep["observations"][1:] for ep in held_out])
    error = np.sqrt(((np.asarray(pred).mean(0) - truth) ** 2).mean(axis=(0, 2)))  # RMS per horizon step
    scale = np.sqrt((truth**2).mean())
    assert error[0] < 0.1 * scale and error[-1] < 0.25 * scale, (error, scale)
    next_obs, r, uncertainty = model.step(state, obs0, actions[:, 0], jax.random.PRNGKey(1))
    assert next_obs.shape == (8, 2) and r.shape == (8,) and np.all(np.asarray(uncertainty) >= 0)
