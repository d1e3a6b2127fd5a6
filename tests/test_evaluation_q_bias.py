"""Critic bias at evaluation: predict_q by hand, Monte-Carlo returns and episode ends by hand, CLI and report."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.offpolicy.ddpg import DDPG
from polyak.algos.offpolicy.sac import SAC
from polyak.algos.offpolicy.td3 import TD3
from polyak.cli import main
from polyak.core.normalizer import RunningMeanStd
from polyak.evaluation import discounted_returns, evaluate_q_bias
from tests.fake_envs import CountingEnv


def ones_env(length, terminate):
    """Reward 1 every step, `length` steps, ended by termination or by a time limit."""
    return CountingEnv(length=length, terminate=terminate, reward_fn=lambda n: 1.0)


def with_constant_critic(model, c):
    """Every critic outputs c (in scaled-reward units) for every (s, a): zero weights, last bias c."""
    params = jax.tree.map(jnp.zeros_like, model.learner.agent.critic_params)
    mlp = params["params"]["VmapCritic_0"]["MLP_0"]
    last = sorted(mlp, key=lambda name: int(name.split("_")[1]))[-1]
    mlp[last]["bias"] = jnp.full_like(mlp[last]["bias"], c)
    model.learner = model.learner._replace(agent=model.learner.agent._replace(critic_params=params))
    return model


def test_discounted_returns_by_hand():
    assert discounted_returns([1.0, 1.0, 1.0], 0.5) == pytest.approx([1.75, 1.5, 1.0])
    # a time-limit cut: the tail V(s_T) = 8 enters with gamma^(T-t)
    assert discounted_returns([1.0, 1.0, 1.0], 0.5, bootstrap=8.0) == pytest.approx([2.75, 3.5, 5.0])
    assert discounted_returns([2.0, -1.0], 1.0) == pytest.approx([1.0, -1.0])


def test_predict_q_is_the_critic_ensemble_applied_by_hand():
    env = CountingEnv()  # actions in [-2, 2]
    model = TD3("MlpPolicy", env, seed=3, policy_kwargs=dict(net_arch=[8, 8]), reward_scale=4.0)
    rms = RunningMeanStd(jnp.array([1.0, 100.0]), jnp.array([4.0, 9.0]), jnp.asarray(10.0))
    model.learner = model.learner._replace(obs_rms=rms)
    rng = np.random.default_rng(0)
    obs = rng.normal([1.0, 100.0], [2.0, 3.0], (5, 2)).astype(np.float32)
    act = rng.uniform(-2.0, 2.0, (5, 1)).astype(np.float32)

    x = np.concatenate([np.clip((obs - [1.0, 100.0]) / np.sqrt([4.0, 9.0]), -10, 10), act / 2.0], axis=1)
    layers = model.learner.agent.critic_params["params"]["VmapCritic_0"]["MLP_0"]
    expected = []
    for j in range(2):
        h = x
        for i in range(3):
            h = h @ np.asarray(layers[f"Dense_{i}"]["kernel"][j]) + np.asarray(layers[f"Dense_{i}"]["bias"][j])
            h = np.maximum(h, 0.0) if i < 2 else h
        expected.append(h[:, 0] / 4.0)  # the critics learn rewards x reward_scale
    q = model.predict_q(obs, act)
    assert q.shape == (5, 2)
    np.testing.assert_allclose(q, np.stack(expected, axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict_q(obs[0], act[0]), q[0], rtol=1e-6)
    with pytest.raises(ValueError, match="predict_q needs"):
        model.predict_q(obs, act[:3])


def test_terminated_episodes_use_the_exact_return(reward_scale=2.0):
    """Reward 1 for 5 steps then termination; gamma 0.5: G_t = 2 (1 - 0.5^(5-t)); Q = 6 / reward_scale = 3."""
    model = with_constant_critic(DDPG("MlpPolicy", ones_env(5, True), seed=0, policy_kwargs=dict(net_arch=[8]),
                                      reward_scale=reward_scale), 3.0 * reward_scale)
    r = evaluate_q_bias(model, ones_env(5, True), n_episodes=2, seed=0, gamma=0.5)
    g = np.array([1.9375, 1.875, 1.75, 1.5, 1.0])
    assert r["n_states"] == 10 and r["terminated_episodes"] == 2 and r["truncated_episodes"] == 0
    assert r["q_t0"] == pytest.approx(3.0) and r["return_t0"] == pytest.approx(1.9375)
    assert r["bias_t0"] == pytest.approx(3.0 - 1.9375)
    assert r["bias_mean"] == pytest.approx(3.0 - g.mean())
    assert r["bias_median"] == pytest.approx(3.0 - 1.75)
    assert r["bias_normalized"] == pytest.approx((3.0 - g.mean()) / g.mean())
    assert r["critics"]["q1"] == r["critics"]["min"] == r["critics"]["mean"]  # DDPG: one critic
    sparse = evaluate_q_bias(model, ones_env(5, True), n_episodes=1, seed=0, gamma=0.5, every=2)  # t = 0, 2, 4
    assert sparse["n_states"] == 3 and sparse["bias_mean"] == pytest.approx(3.0 - np.mean(g[[0, 2, 4]]))


def test_truncated_episodes_bootstrap_the_tail_and_keep_states_far_from_the_end():
    """Cut off after 5 steps: G_t = sum + 0.5^(5-t) Q(s_T); states with 0.5^(5-t) <= 0.25 are t = 0..3."""
    model = with_constant_critic(DDPG("MlpPolicy", ones_env(5, False), seed=0, policy_kwargs=dict(net_arch=[8])), 3.0)
    r = evaluate_q_bias(model, ones_env(5, False), n_episodes=1, seed=0, gamma=0.5)
    t = np.arange(5)
    g = 2 * (1 - 0.5 ** (5 - t)) + 0.5 ** (5 - t) * 3.0
    assert r["truncated_episodes"] == 1 and r["n_states"] == 4
    assert r["tail_weight_t0"] == pytest.approx(1 / 32)
    assert r["return_t0"] == pytest.approx(g[0]) and r["bias_t0"] == pytest.approx(3.0 - g[0])
    assert r["bias_mean"] == pytest.approx(3.0 - g[:4].mean())
    everything = evaluate_q_bias(model, ones_env(5, False), n_episodes=1, seed=0, gamma=0.5, max_tail_weight=1.0)
    assert everything["n_states"] == 5 and everything["bias_mean"] == pytest.approx(3.0 - g.mean())


def test_sac_soft_return_adds_the_discounted_entropy_bonus_of_the_next_state():
    """Two steps then termination: the only bonus is gamma * alpha * H(pi(.|s_1)) at t = 0."""
    model = SAC("MlpPolicy", ones_env(2, True), seed=0, policy_kwargs=dict(net_arch=[8]))
    r = evaluate_q_bias(model, ones_env(2, True), n_episodes=1, seed=0, gamma=0.9)
    soft = r["soft"]
    assert "q1" not in r["critics"] and soft["alpha"] == pytest.approx(1.0)
    assert np.isfinite(soft["entropy_mean"]) and soft["entropy_mean"] < np.log(2.0)  # tanh-squashed: H <= log 2
    assert soft["bias_t0"] == pytest.approx(r["bias_t0"] - 0.9 * soft["alpha"] * soft["entropy_mean"], rel=1e-5)
    assert soft["alpha_entropy"] == pytest.approx(soft["alpha"] * soft["entropy_mean"])


def test_train_writes_q_bias_eval_prints_it_and_report_renders_table_and_plot(tmp_path, capsys):
    run, out = tmp_path / "ddpg-s0", tmp_path / "report"
    assert main(["train", "ddpg", "--steps", "300", "--run-dir", str(run), "--no-progress", "--eval-episodes", "1",
                 "--log-interval", "100", "--set", "learning_starts=100", "--set", "net_arch=[16,16]"]) == 0
    result = json.loads((run / "eval.json").read_text())
    for key in ("q_bias", "q_bias_t0", "q_bias_normalized"):
        assert np.isfinite(result[key])
    details = result["q_bias_details"]
    assert details["bias_mean"] == result["q_bias"] and details["n_states"] > 0
    assert set(details["critics"]) == {"min", "mean", "q1"}
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--seed", str(10_000), "--q-bias"]) == 0
    printed = capsys.readouterr().out
    assert "critic bias Q - G" in printed and f"mean {result['q_bias']:+.3f}" in printed  # same episode as train's
    assert main(["report", str(run), "--out", str(out), "--reps", "100"]) == 0
    assert (out / "q_bias_Pendulum-v1.png").stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "Critic bias on Pendulum-v1" in md and "q_bias_Pendulum-v1.png" in md
    bias = json.loads((out / "report.json").read_text())["environments"]["Pendulum-v1"]["q_bias"]["ddpg"]
    assert bias["n"] == 1 and bias["mean"]["values"] == [pytest.approx(result["q_bias"])]
