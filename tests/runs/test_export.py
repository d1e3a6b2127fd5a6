"""`polyak export`: the ONNX graph and the NumPy reference act as `model.predict(obs, deterministic=True)`, with the
observation normaliser and the action rescaling inside, on observations far beyond the normaliser's clip."""

import ast
import importlib.util
import sys
from pathlib import Path

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import polyak
from polyak.cli import main
from polyak.core.normalizer import RunningMeanStd, rms_normalize
from polyak.core.networks import MLP
from polyak.envs.spaces import ActionScaler
from polyak.io.checkpoint import CheckpointError
from polyak.runs import export
from polyak.runs.export import ExportError, Op, export_policy, reference_forward

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

N_OBS = 1000
# (class, env, steps, hyperparameters): a few hundred steps, so that the weights and the normaliser have moved
TRAINED = {
    "sac": (polyak.SAC, "Pendulum-v1", 250, {"learning_starts": 50}),
    "td3": (polyak.TD3, "Pendulum-v1", 250, {"learning_starts": 50}),
    "ppo": (polyak.PPO, "Pendulum-v1", 256, {"n_steps": 128, "batch_size": 64, "n_epochs": 2}),
    "dqn": (polyak.DQN, "CartPole-v1", 300, {"learning_starts": 50, "train_freq": 1}),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """name -> a run folder holding a briefly trained model (observation normalisation on, the default); each
    trained once per module."""
    runs = {}

    def get(name: str):
        if name not in runs:
            cls, env, steps, hp = TRAINED[name]
            model = cls("MlpPolicy", env, seed=0, **hp).learn(steps)
            assert model.config.normalize_obs
            folder = tmp_path_factory.mktemp(name)
            model.save(folder / "model.polyak")
            runs[name] = folder, model
        return runs[name]

    return get


@pytest.fixture(params=sorted(TRAINED))
def run(request, trained):
    """(run folder, the trained model in memory): the exported file must act as the model that was saved."""
    return trained(request.param)


def wide_observations(model, n: int = N_OBS, seed: int = 1) -> np.ndarray:
    """Observations within and far beyond the normaliser's clip (up to 40 running standard deviations)."""
    rms = model.learner.obs_rms
    mean, std = np.asarray(rms.mean, np.float64), np.sqrt(np.asarray(rms.var, np.float64))
    rng = np.random.default_rng(seed)
    scale = rng.choice([1.0, 5.0, 40.0], size=(n, 1))
    return (mean + std * scale * rng.standard_normal((n, mean.size))).astype(np.float32)


def assert_same_actions(got, expected, model, obs):
    if np.issubdtype(np.asarray(expected).dtype, np.integer):  # argmax: equal, except between near-tied Q values
        values = reference_forward(export.npz_arrays(export.policy_ops(model)[:-1], {}), obs)
        top2 = np.sort(values, axis=-1)[:, -2:]
        differ = got != expected
        assert got.dtype == np.int64 and got.shape == expected.shape
        assert np.all(top2[differ, 1] - top2[differ, 0] < 1e-5), f"{differ.sum()} actions differ"
    else:
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_onnx_runtime_acts_as_predict(run):
    run_dir, model = run
    assert export_policy(run_dir, "onnx") == [run_dir / "policy.onnx"]
    session = ort.InferenceSession(str(run_dir / "policy.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["observation"]
    obs = wide_observations(model)
    assert np.abs(rms_normalize(model.learner.obs_rms, obs)).max() == pytest.approx(10.0)  # beyond the clip
    got = session.run(["action"], {"observation": obs})[0]
    expected = model.predict(obs, deterministic=True)[0]
    assert_same_actions(got, expected, model, obs)
    assert session.run(["action"], {"observation": obs[:1]})[0].shape == expected[:1].shape  # batch of one
    if expected.dtype == np.float32:  # clipped to the env's bounds (PPO's Gaussian mean is not)
        assert np.all(got >= model.action_space.low) and np.all(got <= model.action_space.high)


def test_npz_reference_forward_acts_as_predict(run, tmp_path):
    run_dir, model = run
    out = tmp_path / "deploy" / "pendulum_policy.npz"
    npz, script = export_policy(run_dir / "model.polyak", "npz", out)
    assert (npz, script) == (out, out.with_name("pendulum_policy_forward.py"))
    obs = wide_observations(model, seed=2)
    expected = model.predict(obs, deterministic=True)[0]
    with np.load(npz, allow_pickle=False) as f:  # NumPy arrays only, no pickle
        params = {k: f[k] for k in f.files}
    assert_same_actions(reference_forward(params, obs), expected, model, obs)
    # the stand-alone file: NumPy only, the arrays next to it, the same function
    spec = importlib.util.spec_from_file_location("pendulum_policy_forward", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert_same_actions(module.policy(obs), expected, model, obs)
    assert "import polyak" not in script.read_text() and "jax" not in script.read_text()
    single = module.policy(obs[0])  # one observation, as model.predict takes it
    np.testing.assert_allclose(single, model.predict(obs[0])[0], rtol=0, atol=1e-5)


def test_normaliser_and_rescaling_ops_match_hand_computed_values():
    rms = RunningMeanStd(jnp.array([1.0, -2.0]), jnp.array([4.0, 0.25]), jnp.array(10.0))
    obs = np.array([[1.0, -2.0], [3.0, -1.0], [100.0, -100.0]], np.float32)
    ops = [Op("sub", np.float32([1.0, -2.0])), Op("div", np.sqrt(np.float32([4.0, 0.25]) + np.float32(1e-8))),
           Op("clip", np.float32(-10.0), np.float32(10.0))]
    # (s - mean) / std: [0, 0], [1, 2], clipped to [10, -10]
    np.testing.assert_allclose(reference_forward(export.npz_arrays(ops, {}), obs), [[0, 0], [1, 2], [10, -10]], atol=1e-6)
    np.testing.assert_allclose(reference_forward(export.npz_arrays(ops, {}), obs), rms_normalize(rms, obs), atol=1e-6)
    box = gym.spaces.Box(np.float32([-2.0, 0.0]), np.float32([2.0, 10.0]))
    a = np.array([[-1.5, 0.0], [0.5, 1.0], [1.0, 3.0]], np.float32)  # beyond [-1, 1] is clipped first
    got = reference_forward(export.npz_arrays(export.action_ops(box), {}), a)
    np.testing.assert_allclose(got, [[-2.0, 5.0], [1.0, 10.0], [2.0, 10.0]], atol=1e-6)
    np.testing.assert_allclose(got, ActionScaler(box.low, box.high).to_env(a), atol=1e-6)
    logits = np.array([[0.1, 0.3, -1.0], [2.0, 0.0, 2.0]], np.float32)  # a tie goes to the first, as jnp.argmax
    assert reference_forward(export.npz_arrays(export.action_ops(gym.spaces.Discrete(3, start=5)), {}), logits).tolist() == [6, 5]


@pytest.mark.parametrize("torso", [{"layer_norm": True}, {"batch_norm": "batch_norm"}, {"batch_norm": "batch_renorm"}])
def test_normalisation_layers_in_eval_mode(torso):
    """LayerNorm and (running-statistics) batch norm / renorm, in NumPy and ONNX, against Flax's eval mode."""
    mlp = MLP((16, 8), 3, activation=jnp.tanh, **torso)
    rng = np.random.default_rng(0)
    x = (3.0 * rng.standard_normal((64, 5))).astype(np.float32)
    variables = jax.jit(mlp.init)(jax.random.PRNGKey(1), x)
    # move every parameter and running statistic away from its initial value (variances stay positive)
    variables = jax.tree.map(lambda v: v + np.float32(0.3) * np.abs(rng.standard_normal(v.shape), dtype=np.float32)
                             if v.dtype == jnp.float32 else v, variables)
    expected = np.asarray(jax.jit(lambda v, x: mlp.apply(v, x, train=False))(variables, x))
    ops = export.mlp_ops(mlp, variables)
    np.testing.assert_allclose(reference_forward(export.npz_arrays(ops, {}), x), expected, rtol=0, atol=1e-5)
    meta = {"algorithm": "test", "action_space": {"low": [0.0] * 3}}
    session = ort.InferenceSession(export.onnx_model(ops, 5, meta).SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"observation": x})[0], expected, rtol=0, atol=1e-5)


def test_crossq_and_evolution_policies_export(tmp_path):
    """Other families' actors: CrossQ's (batch renormalisation, running statistics moved), CEM's tanh MLP."""
    crossq = polyak.CrossQ("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs={"net_arch": [32, 32]})
    state = crossq.learner.agent
    stats = jax.tree.map(lambda v: v + 0.5 if v.dtype == jnp.float32 else v, state.actor_params["batch_stats"])
    crossq.learner = crossq.learner._replace(agent=state._replace(actor_params={**state.actor_params, "batch_stats": stats}))
    cem = polyak.CEM("MlpPolicy", "Pendulum-v1", seed=0)
    for model in (crossq, cem):
        npz, _ = export.export_model(model, "npz", tmp_path / f"{model.name}.npz")
        obs = wide_observations(model)
        params = dict(np.load(npz))
        np.testing.assert_allclose(reference_forward(params, obs), model.predict(obs)[0], rtol=0, atol=1e-5)


def test_cli_export_and_clear_errors(trained, tmp_path, capsys, monkeypatch):
    run_dir, _ = trained("sac")
    out = tmp_path / "p.onnx"
    assert main(["export", str(run_dir), "--output", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and out.is_file()
    with pytest.raises(SystemExit, match="no such run folder or model file"):
        main(["export", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="holds no model.polyak"):
        main(["export", str(tmp_path)])
    corrupt = tmp_path / "corrupt.polyak"
    data = bytearray((run_dir / "model.polyak").read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="polyak export: .*corrupt.polyak"):
        main(["export", str(corrupt)])
    with pytest.raises(CheckpointError):
        export_policy(corrupt)
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_policy(run_dir, "tflite")
    monkeypatch.setitem(sys.modules, "onnx", None)  # onnx not installed
    with pytest.raises(ExportError, match=r'pip install "polyak\[export\]"'):
        export_policy(run_dir, "onnx")
    export_policy(run_dir, "npz", tmp_path / "still.npz")  # npz needs NumPy only


def test_unsupported_policies_error_clearly(trained, tmp_path):
    tabular = polyak.QLearning("TabularPolicy", "FrozenLake-v1", seed=0)
    with pytest.raises(ExportError, match="qlearning policy: it is a table"):
        export.export_model(tabular, "onnx", tmp_path / "q.onnx")
    mlp = MLP((4,), 2, activation=nn.gelu)
    with pytest.raises(ExportError, match="unsupported activation 'gelu'"):
        export.mlp_ops(mlp, mlp.init(jax.random.PRNGKey(0), jnp.zeros((1, 3))))
    # ops that do not reproduce predict are refused (here: a policy exported without its normaliser)
    model = polyak.load(trained("td3")[0] / "model.polyak")
    model.learner = model.learner._replace(obs_rms=RunningMeanStd(jnp.full(3, 5.0), jnp.full(3, 9.0), jnp.array(9.0)))
    ops = export.network_ops(model) + export.action_ops(model.action_space)
    with pytest.raises(ExportError, match="does not reproduce model.predict"):
        export.check_against_predict(model, ops)
    assert not (tmp_path / "q.onnx").exists()


def test_onnx_is_imported_only_inside_the_export_functions():
    """`import polyak` (and the CLI) must work without onnx: no module-level import of it anywhere in polyak."""
    root = Path(polyak.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("onnx", "onnxruntime") for n in names), f"{path}: {ast.unparse(node)}"
