"""Export a trained policy for a control system: an ONNX graph, or NumPy arrays (.npz) with a reference forward
function, both mapping observations in the env's units to actions in the env's units.

`policy_ops(model)` writes `model.predict(obs, deterministic=True)` as a short list of array operations (`Op`):

    normaliser   (s - mean) / sqrt(var + 1e-8), clipped to +-10          (when the model normalises observations)
    network      [batch norm ->] dense [-> layer norm] -> relu | tanh, ..., [batch norm ->] dense   (eval mode)
    head         tanh (DDPG, TD3, SAC and its upgrades, CQL, IQL, evolution strategies), the first half of the
                 outputs first (a Gaussian actor's mean), or nothing (a policy-gradient Gaussian's mean, AWAC)
    action       Box: clip to [-1, 1], a_env = low + (a + 1) (high - low) / 2;  Discrete: start + argmax

The list becomes an ONNX graph (`onnx_model`: Sub/Div/Clip, Gemm, Relu/Tanh, LayerNormalization, Slice, ArgMax,
Add/Mul; opset 17, built with `onnx.helper` from the Flax parameters) or an .npz of its arrays, read by
`reference_forward` (NumPy only, written as a .py file next to the .npz). Before writing, every export runs the
ops on observations spread far beyond the normaliser's clip and compares them with `model.predict`: a file that
would act differently from the model is never written.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from polyak._version import __version__
from polyak.algos import registry
from polyak.algos.evolution.population import FlatPolicy
from polyak.algos.offline.learner import GaussianPolicy
from polyak.algos.offpolicy.actor_critic import ActorCriticAgent
from polyak.algos.offpolicy.dqn import DQNAgent
from polyak.algos.onpolicy.learner import PolicyGradientAgent
from polyak.core.networks import BATCH_NORM_EPSILON, MLP, DeterministicActor, GaussianActor
from polyak.core.normalizer import rms_normalize
from polyak.runs.run import MODEL_FILE, RunFolder

FORMATS = ("onnx", "npz")
ONNX_OPSET = 17  # the first opset with LayerNormalization; onnxruntime has run it since 1.14
ONNX_IR_VERSION = 8  # opset 17's IR version (onnx 1.12), so that older runtimes load the file too
NPZ_FORMAT = 1  # the layout of the .npz (ops, their arrays "i.a", "i.b", "i.c", meta), read by reference_forward
OBS_CLIP = inspect.signature(rms_normalize).parameters["clip"].default  # what predict clips normalised obs to
OBS_EPSILON = 1e-8  # rms_normalize's sqrt(var + 1e-8)
PROBE_ROWS = 512  # observations the export compares with model.predict
INSTALL_HINT = 'pip install "polyak[export]"'
SUPPORTED = ("export supports MLP policies: DQN's Q-network, policy-gradient policies, deterministic and Gaussian "
             "actors, evolution strategies' tanh MLPs")
ACTIVATIONS = {jax.nn.relu: "relu", jnp.tanh: "tanh"}  # the activations `core.networks.MLP` is built with here


class ExportError(ValueError):
    """The model cannot be exported: no model file, an unsupported algorithm or layer, or ops that disagree
    with `model.predict`. The message names the problem."""


class Op(NamedTuple):
    """One step of the policy on a batch x (n, features): `kind` and up to three constant arrays.

    sub/div/mul/add a: x op a (broadcast);  clip a, b: min(max(x, a), b);  dense a, b: x @ a + b;  relu; tanh;
    layer_norm a, b, c: (x - mean) / sqrt(var + c) * a + b over the features;  slice a: x[:, :a];
    argmax a: a + argmax over the features (integer actions)."""

    kind: str
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    c: np.ndarray | None = None


def _f32(x: Any) -> np.ndarray:
    return np.asarray(jax.device_get(x), np.float32)


# -- the model as ops ------------------------------------------------------------------------------
def mlp_ops(mlp: MLP, variables: dict) -> list[Op]:
    """`core.networks.MLP` in eval mode: per hidden layer [norm ->] Dense [-> LayerNorm] -> activation (dropout is
    off), then [norm ->] Dense; norm is BatchNorm or BatchRenorm with the running statistics."""
    activation = ACTIVATIONS.get(mlp.activation)
    if activation is None:
        name = getattr(mlp.activation, "__name__", repr(mlp.activation))
        raise ExportError(f"unsupported activation {name!r} in the policy network (supported: relu, tanh)")
    norms = {None: None, "batch_norm": "BatchNorm", "batch_renorm": "BatchRenorm"}
    if mlp.batch_norm not in norms:
        raise ExportError(f"unsupported normalisation {mlp.batch_norm!r} in the policy network")
    norm = norms[mlp.batch_norm]
    params, stats = variables.get("params", {}), variables.get("batch_stats", {})
    used: set[str] = set()

    def layer(name: str) -> dict:
        if name not in params:
            raise ExportError(f"the policy network has no layer {name!r} (layers: {sorted(params)})")
        used.add(name)
        return params[name]

    ops: list[Op] = []
    for i in range(len(mlp.hidden) + 1):
        if norm is not None:  # eval mode: (x - running mean) / sqrt(running var + eps) * scale + bias
            p, s = layer(f"{norm}_{i}"), stats[f"{norm}_{i}"]
            ops += [Op("sub", _f32(s["mean"])), Op("div", np.sqrt(_f32(s["var"]) + np.float32(BATCH_NORM_EPSILON))),
                    Op("mul", _f32(p["scale"])), Op("add", _f32(p["bias"]))]
        dense = layer(f"Dense_{i}")
        ops.append(Op("dense", _f32(dense["kernel"]), _f32(dense["bias"])))
        if i < len(mlp.hidden):
            if mlp.layer_norm:
                ln = layer(f"LayerNorm_{i}")
                ops.append(Op("layer_norm", _f32(ln["scale"]), _f32(ln["bias"]), np.float32(nn.LayerNorm().epsilon)))
            ops.append(Op(activation))
    if set(params) - used:
        raise ExportError(f"unsupported layers in the policy network: {sorted(set(params) - used)} "
                          "(supported: Dense, LayerNorm, BatchNorm and BatchRenorm in eval mode, relu, tanh)")
    return ops


def _scope(variables: dict, name: str) -> dict:
    """The variables of the submodule `name` (every collection: params, batch_stats)."""
    return {col: tree[name] for col, tree in variables.items() if isinstance(tree, dict) and name in tree}


def network_ops(model) -> list[Op]:
    """The policy network of `model` in the agent's units: actions in [-1, 1], or logits / Q-values (Discrete)."""
    if registry.entry(model.name).family == "tabular":
        raise ExportError(f"cannot export a {model.name} policy: it is a table over discrete observations, not a "
                          f"network ({SUPPORTED})")
    agent, state = model.agent, model.learner.agent
    if isinstance(agent, DQNAgent):  # Q(s, .); the action is its argmax
        return mlp_ops(agent.q_network, state.q_params)
    if isinstance(agent, PolicyGradientAgent):  # logits (argmax), or the Gaussian's mean, clipped by the action op
        return mlp_ops(agent.policy_net, state.params["policy"])
    if isinstance(agent, FlatPolicy):  # evolution strategies: tanh(MLP(s)) at the search distribution's mean
        template = agent.network.init(jax.random.PRNGKey(0), jnp.zeros((1, agent.obs_dim)))
        variables = ravel_pytree(template)[1](model.spec.strategy.mean(state))
        return mlp_ops(MLP(agent.hidden, agent.act_dim, nn.tanh), _scope(variables, "MLP_0")) + [Op("tanh")]
    # actor-critic agents (DDPG, TD3, NFQCA: deterministic; SAC's family, CQL: squashed Gaussian; IQL, AWAC: Gaussian);
    # some (fitted Q iteration) act by maximising Q and have no actor
    actor = getattr(agent, "actor", None) if isinstance(agent, ActorCriticAgent) else None
    if isinstance(actor, DeterministicActor):  # mu(s) = tanh(MLP(s))
        mlp = MLP(actor.hidden, actor.act_dim, **actor.torso.as_kwargs())
        return mlp_ops(mlp, _scope(state.actor_params, "MLP_0")) + [Op("tanh")]
    if isinstance(actor, GaussianActor):  # squashed Gaussian: the deterministic action is tanh(mean)
        mlp = MLP(actor.hidden, 2 * actor.act_dim, **actor.torso.as_kwargs())
        return mlp_ops(mlp, _scope(state.actor_params, "MLP_0")) + [Op("slice", np.int64(actor.act_dim)), Op("tanh")]
    if isinstance(actor, GaussianPolicy):  # unsquashed Gaussian (IQL: tanh mean): its mean, clipped by the action op
        mlp = MLP(actor.hidden, actor.act_dim)
        return mlp_ops(mlp, _scope(state.actor_params, "MLP_0")) + ([Op("tanh")] if actor.tanh_mean else [])
    kind = type(actor if actor is not None else agent).__name__
    raise ExportError(f"cannot export a {model.name} policy: its network ({kind}) is not one export knows ({SUPPORTED})")


def normaliser_ops(model) -> list[Op]:
    """(s - mean) / sqrt(var + 1e-8) clipped to +-10 with the frozen running statistics, as `predict` does."""
    if not model.config.normalize_obs:
        return []
    rms = model.learner.obs_rms
    return [Op("sub", _f32(rms.mean)), Op("div", np.sqrt(_f32(rms.var) + np.float32(OBS_EPSILON))),
            Op("clip", np.float32(-OBS_CLIP), np.float32(OBS_CLIP))]


def action_ops(space: gym.Space) -> list[Op]:
    """The agent's action -> the env's, as `envs.spaces.action_map(space).to_env` computes it."""
    if isinstance(space, gym.spaces.Discrete):
        return [Op("argmax", np.int64(space.start))]
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    return [Op("clip", np.float32(-1.0), np.float32(1.0)), Op("add", np.float32(1.0)),
            Op("mul", (0.5 * (high - low)).astype(np.float32)), Op("add", low.astype(np.float32))]


def policy_ops(model) -> list[Op]:
    """`model.predict(obs, deterministic=True)` as ops: observations in the env's units -> its actions."""
    try:
        network = network_ops(model)
    except (KeyError, AttributeError) as e:  # an agent of a known kind whose parameters are laid out otherwise
        raise ExportError(f"cannot export a {model.name} policy: its parameters are not laid out as those of "
                          f"{type(model.agent).__mro__[1].__name__} ({type(e).__name__}: {e}); {SUPPORTED}") from None
    return normaliser_ops(model) + network + action_ops(model.action_space)


def metadata(model, source: str | None = None) -> dict[str, Any]:
    """What the exported file says about itself: the model, its spaces, the input and output conventions."""
    space = model.action_space
    actions = ({"kind": "Discrete", "n": int(space.n), "start": int(space.start)} if isinstance(space, gym.spaces.Discrete)
               else {"kind": "Box", "low": np.asarray(space.low, float).tolist(), "high": np.asarray(space.high, float).tolist()})
    return {"format": "polyak-policy", "npz_format": NPZ_FORMAT, "library_version": __version__,
            "algorithm": model.name, "env_id": model.env_id, "num_timesteps": int(model.num_timesteps),
            "obs_dim": int(model.agent.obs_dim), "action_space": actions,
            "normalize_obs": bool(model.config.normalize_obs), "obs_clip": float(OBS_CLIP),
            "input": "observation (n, obs_dim) float32 in the env's units",
            "output": "action (n, act_dim) float32 in the env's units" if actions["kind"] == "Box"
                      else "action (n,) int64, the env's Discrete action",
            **({"source": source} if source else {})}


# -- the reference forward pass (NumPy only; its source is written next to every .npz) -------------
def reference_forward(params, obs):
    """Actions in the env's units for observations `obs` (n, obs_dim) or (obs_dim,) in the env's units.

    `params`: the exported .npz as a dict (`dict(np.load(path))`): "ops", the kinds in order, and each op's
    constant arrays "i.a", "i.b", "i.c". Float32 throughout, like the policy it was exported from."""
    x = np.asarray(obs, np.float32)
    for i, kind in enumerate(params["ops"]):
        a, b, c = (params.get(f"{i}.{k}") for k in "abc")
        if kind == "sub":
            x = x - a
        elif kind == "div":
            x = x / a
        elif kind == "mul":
            x = x * a
        elif kind == "add":
            x = x + a
        elif kind == "clip":
            x = np.minimum(np.maximum(x, a), b)
        elif kind == "dense":
            x = x @ a + b
        elif kind == "relu":
            x = np.maximum(x, np.float32(0.0))
        elif kind == "tanh":
            x = np.tanh(x)
        elif kind == "layer_norm":
            mean = x.mean(axis=-1, keepdims=True)
            var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
            x = (x - mean) / np.sqrt(var + c) * a + b
        elif kind == "slice":
            x = x[..., : int(a)]
        elif kind == "argmax":
            x = np.argmax(x, axis=-1).astype(np.int64) + int(a)
        else:
            raise ValueError(f"unknown op {kind!r} at position {i}")
    return x


def npz_arrays(ops: list[Op], meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The .npz's arrays: "ops" (the kinds), "i.a" / "i.b" / "i.c" (op i's constants), "meta" (JSON text)."""
    arrays = {"ops": np.array([op.kind for op in ops]), "meta": np.array(json.dumps(meta))}
    for i, op in enumerate(ops):
        for key in "abc":
            if getattr(op, key) is not None:
                arrays[f"{i}.{key}"] = np.asarray(getattr(op, key))
    return arrays


def reference_source(npz_name: str) -> str:
    """The stand-alone .py file written next to an .npz: `reference_forward`, `load` and a `policy` for that file."""
    return (f'"""Reference forward pass of a polyak policy exported to {npz_name} (NumPy only).\n\n'
            f"    from {Path(npz_name).stem}_forward import policy\n"
            "    action = policy(observation)   # observations and actions in the env's units\n\n"
            'Written by `polyak export --format npz`; the same function is polyak.runs.export.reference_forward."""\n\n'
            "from pathlib import Path\n\nimport numpy as np\n\n"
            f'NPZ = Path(__file__).with_name("{npz_name}")\n\n\n'
            "def load(path=NPZ):\n"
            '    """The exported arrays as a dict (no pickle)."""\n'
            "    with np.load(path, allow_pickle=False) as f:\n"
            "        return {k: f[k] for k in f.files}\n\n\n"
            f"{inspect.getsource(reference_forward)}\n\n"
            "_PARAMS = None\n\n\n"
            "def policy(obs):\n"
            f'    """Action(s) for observation(s), with the arrays of {npz_name} (loaded once)."""\n'
            "    global _PARAMS\n"
            "    if _PARAMS is None:\n"
            "        _PARAMS = load()\n"
            "    return reference_forward(_PARAMS, obs)\n")


# -- checking the ops against the model ---------------------------------------------------------------
def probe_observations(model, n: int, seed: int = 0) -> np.ndarray:
    """n observations around the normaliser's mean: half within +-3 std, half out to +-30 std (beyond the clip)."""
    rms = model.learner.obs_rms
    mean, std = _f32(rms.mean).astype(np.float64), np.sqrt(_f32(rms.var).astype(np.float64) + OBS_EPSILON)
    rng = np.random.default_rng(seed)
    spread = np.where(np.arange(n)[:, None] < n // 2, 3.0, 3.0 * OBS_CLIP)
    return (mean + std * spread * rng.uniform(-1.0, 1.0, (n, mean.size))).astype(np.float32)


def check_against_predict(model, ops: list[Op], n: int = PROBE_ROWS) -> None:
    """ExportError unless the ops give `model.predict(obs, deterministic=True)` on `probe_observations`: Box
    actions within 1e-4 of the action range, Discrete actions equal (except between near-tied values)."""
    params = npz_arrays(ops, {})
    obs = probe_observations(model, n)
    expected = np.asarray(model.predict(obs, deterministic=True)[0])
    got = reference_forward(params, obs)
    if ops[-1].kind == "argmax":
        values = reference_forward(npz_arrays(ops[:-1], {}), obs)
        top2 = np.sort(values, axis=-1)[:, -2:]
        tied = top2[:, 1] - top2[:, 0] <= 1e-4 * (1.0 + np.abs(top2[:, 1]))
        bad = (got != expected) & ~tied
        worst = f"{int(bad.sum())} of {n} actions differ"
    else:
        space = model.action_space
        scale = max(1.0, float(np.max(np.asarray(space.high, np.float64) - space.low)))
        err = np.abs(got.astype(np.float64) - expected)
        bad = err > 1e-4 * scale
        worst = f"largest difference {float(err.max()):.3g}"
    if bad.any():
        raise ExportError(f"the exported {model.name} policy does not reproduce model.predict ({worst}): its "
                          f"network ({type(model.agent).__name__}) is not one export supports")


# -- ONNX ----------------------------------------------------------------------------------------------
def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    return onnx


def onnx_model(ops: list[Op], obs_dim: int, meta: dict[str, Any]):
    """The ops as an ONNX model: input "observation" (batch, obs_dim) float32, output "action"."""
    onnx = _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []

    def const(name: str, value) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    x, out_type, out_shape = "observation", TensorProto.FLOAT, None
    for i, op in enumerate(ops):
        y = f"op{i}_{op.kind}"
        if op.kind in ("sub", "div", "mul", "add"):
            nodes.append(helper.make_node(op.kind.capitalize(), [x, const(f"{y}_a", op.a)], [y]))
        elif op.kind == "clip":
            nodes.append(helper.make_node("Clip", [x, const(f"{y}_min", op.a), const(f"{y}_max", op.b)], [y]))
        elif op.kind == "dense":
            nodes.append(helper.make_node("Gemm", [x, const(f"{y}_kernel", op.a), const(f"{y}_bias", op.b)], [y]))
        elif op.kind in ("relu", "tanh"):
            nodes.append(helper.make_node(op.kind.capitalize(), [x], [y]))
        elif op.kind == "layer_norm":
            nodes.append(helper.make_node("LayerNormalization", [x, const(f"{y}_scale", op.a), const(f"{y}_bias", op.b)],
                                          [y], axis=-1, epsilon=float(op.c)))
        elif op.kind == "slice":
            ends = np.array([int(op.a)], np.int64)
            nodes.append(helper.make_node("Slice", [x, const(f"{y}_starts", np.zeros(1, np.int64)),
                                                    const(f"{y}_ends", ends), const(f"{y}_axes", np.ones(1, np.int64))], [y]))
        elif op.kind == "argmax":
            nodes.append(helper.make_node("ArgMax", [x], [f"{y}_index"], axis=1, keepdims=0))
            nodes.append(helper.make_node("Add", [f"{y}_index", const(f"{y}_start", np.asarray(op.a, np.int64))], [y]))
            out_type, out_shape = TensorProto.INT64, ["batch"]
        else:
            raise ExportError(f"no ONNX operator for op {op.kind!r}")
        x = y
    if out_shape is None:
        out_shape = ["batch", len(meta["action_space"]["low"])]
    nodes.append(helper.make_node("Identity", [x], ["action"]))
    graph = helper.make_graph(nodes, f"polyak_{meta.get('algorithm', 'policy')}_policy",
                              [helper.make_tensor_value_info("observation", TensorProto.FLOAT, ["batch", obs_dim])],
                              [helper.make_tensor_value_info("action", out_type, out_shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="polyak",
                              producer_version=__version__, ir_version=ONNX_IR_VERSION,
                              doc_string="polyak deterministic policy: observation -> action, both in the env's units")
    helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    onnx.checker.check_model(model, full_check=True)
    return model


# -- files -----------------------------------------------------------------------------------------------
def _write_atomic(path: Path, write) -> None:
    """write(file) into a temporary file next to `path`, fsync, rename (no half-written export)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_file(path: str | Path) -> Path:
    """RUN_DIR -> RUN_DIR/model.polyak; a file path stays; ExportError if there is no model there."""
    path = Path(path)
    if path.is_dir():
        if not RunFolder(path).model_path.is_file():
            raise ExportError(f"{path} holds no {MODEL_FILE}: pass a run folder written by `polyak train` (after "
                              "training finished) or a .polyak model file")
        return RunFolder(path).model_path
    if not path.is_file():
        raise ExportError(f"{path}: no such run folder or model file")
    return path


def default_output(path: str | Path, fmt: str) -> Path:
    """RUN_DIR/policy.FMT for a run folder, MODEL.FMT next to a model file."""
    path = Path(path)
    return path / f"policy.{fmt}" if path.is_dir() else path.with_suffix(f".{fmt}")


def export_model(model, fmt: str, output: str | Path, source: str | None = None) -> list[Path]:
    """Write `model`'s deterministic policy as ONNX or npz (+ its .py reference) to `output`; the files written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    output = Path(output)
    ops = policy_ops(model)
    check_against_predict(model, ops)
    meta = metadata(model, source)
    if fmt == "onnx":
        proto = onnx_model(ops, int(model.agent.obs_dim), meta)
        _write_atomic(output, lambda f: f.write(proto.SerializeToString()))
        return [output]
    if output.suffix != ".npz":  # np.savez would append it
        output = output.with_name(output.name + ".npz")
    _write_atomic(output, lambda f: np.savez(f, **npz_arrays(ops, meta)))
    script = output.with_name(f"{output.stem}_forward.py")
    _write_atomic(script, lambda f: f.write(reference_source(output.name).encode()))
    return [output, script]


def export_policy(path: str | Path, fmt: str = "onnx", output: str | Path | None = None) -> list[Path]:
    """`polyak export RUN_DIR|MODEL --format onnx|npz [--output PATH]`: load the model and export its policy."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    if fmt == "onnx":
        _import_onnx()  # before loading the model: say what to install first
    source = model_file(path)
    model = registry.load_model(source)
    return export_model(model, fmt, output if output is not None else default_output(path, fmt), source=str(source))
