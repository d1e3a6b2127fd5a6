"""The fully jitted loop: same transitions as the host loop, vmap over seeds, run folders."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import polyak
from polyak.algos.offpolicy.jitted import JittedLoop
from polyak.envs.protocol import GymnasiumVectorAdapter
from polyak.runs.seeds import train_seeds
from tests.fake_envs import ScriptedJaxEnv

SMALL = dict(learning_starts=12, buffer_size=64, batch_size=8, policy_kwargs=dict(net_arch=[16, 16]))


def host_model(algo, seed, n_envs=2, **kw):
    env = GymnasiumVectorAdapter(ScriptedJaxEnv(), n_envs)
    return polyak.ALGORITHMS[algo]("MlpPolicy", env, seed=seed, **SMALL, **kw)


@pytest.mark.parametrize("algo, act_before_update", [pytest.param("sac", False, marks=pytest.mark.gym029),
                                                      ("td3", False), ("sac", True)])  # gym029: ci/gym029.sh
def test_jitted_loop_stores_the_same_transitions_as_the_host_loop(algo, act_before_update):
    """Scripted episodes with terminations, time-limit truncations and auto-resets: the two loops
    write identical replay buffers (the true final observation on truncation, no bootstrap mask),
    choose the same actions and end with the same parameters; with `act_before_update` too (both
    loops then act before each update)."""
    host = host_model(algo, seed=3, act_before_update=act_before_update)
    host.learn(40)  # 20 vector steps of 2 envs: warm-up, then training
    loop = JittedLoop(host.spec, ScriptedJaxEnv(), ScriptedJaxEnv().default_params, chunk=10)
    states = loop.init(jnp.asarray([3], jnp.uint32))
    for start in (0, 10):
        states, logs = loop.run_chunk(states, jnp.int32(start))
    jitted = jax.tree.map(lambda x: x[0], states.learner)
    a, b = jax.device_get(host.learner.buffer), jax.device_get(jitted.buffer)
    assert int(a.size) == int(b.size) == 40
    n = 40
    for field in ("reward", "terminated"):
        np.testing.assert_array_equal(getattr(a.data, field)[:n], getattr(b.data, field)[:n], err_msg=field)
    for field in ("obs", "next_obs"):  # (c, t) exactly; the echoed env action up to float64-vs-float32 rescaling
        np.testing.assert_array_equal(getattr(a.data, field)[:n, :2], getattr(b.data, field)[:n, :2], err_msg=field)
        np.testing.assert_allclose(getattr(a.data, field)[:n, 2], getattr(b.data, field)[:n, 2], atol=1e-5)
    np.testing.assert_allclose(a.data.action[:n], b.data.action[:n], atol=1e-5)
    # the scripted episodes did hit both kinds of boundary
    assert a.data.terminated[:n].sum() > 0
    truncated_rows = (a.data.next_obs[:n, 1] == 5) & (a.data.terminated[:n] == 0)
    assert truncated_rows.sum() > 0
    # on truncation the stored next_obs is the final observation (t = 5), not a reset one (t = 0)
    assert np.all(a.data.next_obs[:n, 1] > 0)
    for x, y in zip(jax.tree.leaves(host.learner.agent), jax.tree.leaves(jitted.agent)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    assert int(jitted.step) == host.num_timesteps == 40


def test_vmap_over_seeds_equals_one_seed_at_a_time():
    model = host_model("sac", seed=0)
    loop = JittedLoop(model.spec, ScriptedJaxEnv(), ScriptedJaxEnv().default_params, chunk=16)
    together, _ = loop.run_chunk(loop.init(jnp.asarray([5, 9], jnp.uint32)), jnp.int32(0))
    for i, seed in enumerate((5, 9)):
        alone, _ = loop.run_chunk(loop.init(jnp.asarray([seed], jnp.uint32)), jnp.int32(0))
        a, b = together.learner.buffer.data.obs[i], alone.learner.buffer.data.obs[0]
        np.testing.assert_array_equal(a[:, :2], b[:, :2])  # the episodes (c, t) exactly
        np.testing.assert_allclose(a[:, 2], b[:, 2], atol=1e-5)  # echoed actions: one seed runs without vmap
        for x, y in zip(jax.tree.leaves(together.learner.agent), jax.tree.leaves(alone.learner.agent)):
            np.testing.assert_allclose(x[i], y[0], rtol=1e-5, atol=1e-6)
    # different seeds see different episodes
    assert not np.array_equal(together.learner.buffer.data.obs[0], together.learner.buffer.data.obs[1])


def test_train_seeds_writes_one_run_folder_per_seed(tmp_path):
    hp = {"learning_starts": 200, "batch_size": 32, "buffer_size": 1000, "net_arch": [32, 32]}
    dirs = train_seeds("sac", "polyak/Pendulum-v1", [0, 1], 400, hp, run_dir=tmp_path, chunk=200, eval_episodes=1,
                       progress_bar=False)
    assert [d.name for d in dirs] == ["seed0", "seed1"]
    for seed, d in enumerate(dirs):
        for name in ("config.json", "metrics.csv", "episodes.csv", "model.polyak", "eval.json", "learning_curve.png"):
            assert (d / name).exists(), name
        assert json.loads((d / "config.json").read_text())["seed"] == seed
        assert json.loads((d / "eval.json").read_text())["steps"] == 400
        model = polyak.load(d / "model.polyak")
        assert model.num_timesteps == 400
        episodes = (d / "episodes.csv").read_text().splitlines()
        assert len(episodes) == 1 + 2 and episodes[1].startswith("200,")  # two 200-step episodes


def test_train_seeds_warns_of_q_divergence_as_the_host_loop_does(tmp_path):
    # gamma = 0.5 and Pendulum's rewards in [-16.3, 0]: |Q| <= 32.6. A huge learning rate drives it beyond.
    hp = {"learning_starts": 100, "batch_size": 32, "buffer_size": 1000, "net_arch": [32, 32], "gamma": 0.5,
          "learning_rate": 0.5, "normalize_obs": False}
    with pytest.warns(RuntimeWarning, match=r"seed 3: possible Q-value divergence.*environment step \d+"):
        try:
            train_seeds("td3", "polyak/Pendulum-v1", [3], 600, hp, run_dir=tmp_path, chunk=100, eval_episodes=1,
                        progress_bar=False)
        except FloatingPointError:
            pass  # it may go on to overflow; the warning must have come first


def test_on_policy_jitted_loop_equals_the_host_loop():
    """PPO over scripted JAX episodes (terminations, time limits, auto-resets): the jitted loop fills
    the same rollouts and reaches the same parameters as the host loop over the vector adapter."""
    from polyak.algos.onpolicy.jitted import OnPolicyJittedLoop

    kw = dict(n_steps=6, batch_size=4, n_epochs=2, policy_kwargs=dict(net_arch=[16]))
    host = polyak.PPO("MlpPolicy", GymnasiumVectorAdapter(ScriptedJaxEnv(), 2), seed=3, **kw)
    host.learn(2 * 6 * 3)  # three rollouts
    loop = OnPolicyJittedLoop(host.spec, ScriptedJaxEnv(), ScriptedJaxEnv().default_params, chunk=18)
    states, logs = loop.run_chunk(loop.init(jnp.asarray([3], jnp.uint32)), jnp.int32(0))
    jitted = jax.tree.map(lambda x: x[0], states.learner)
    assert int(jitted.step) == 36 and int(jitted.row) == 0
    for x, y in zip(jax.tree.leaves(host.learner.agent), jax.tree.leaves(jitted.agent)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    a, b = jax.device_get(host.learner.rollout), jax.device_get(jitted.rollout)  # the third rollout
    for field in ("reward", "terminated", "episode_end", "time_in_episode"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for field in ("obs", "next_obs", "action", "log_prob"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-4, atol=1e-4, err_msg=field)
    assert a.terminated.sum() > 0 and (a.episode_end - a.terminated).sum() > 0  # both kinds of boundary
    assert logs.done.sum() > 0
