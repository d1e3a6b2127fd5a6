"""Torso options of polyak.core.networks: defaults, dropout, layer norm, batch (re)norm, quantiles."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.core.networks import (
    BATCH_NORM_EPSILON,
    MLP,
    BatchRenorm,
    CriticEnsemble,
    DeterministicActor,
    GaussianActor,
    TorsoOptions,
)

EPS = BATCH_NORM_EPSILON


class Reference:
    """The networks as they were before the torso options (same class names, so same key paths)."""

    class MLP(nn.Module):
        hidden: Sequence[int]
        out_dim: int
        activation: Callable = nn.relu
        orthogonal_gain: float | None = None
        output_gain: float = 1.0

        @nn.compact
        def __call__(self, x):
            def dense(width, gain):
                if self.orthogonal_gain is None:
                    return nn.Dense(width)
                return nn.Dense(width, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)

            for width in self.hidden:
                x = self.activation(dense(width, self.orthogonal_gain)(x))
            return dense(self.out_dim, None if self.orthogonal_gain is None else self.output_gain)(x)

    class DeterministicActor(nn.Module):
        hidden: Sequence[int]
        act_dim: int

        @nn.compact
        def __call__(self, obs):
            return jnp.tanh(Reference.MLP(self.hidden, self.act_dim)(obs))

    class GaussianActor(nn.Module):
        hidden: Sequence[int]
        act_dim: int

        @nn.compact
        def __call__(self, obs):
            mean, log_std = jnp.split(Reference.MLP(self.hidden, 2 * self.act_dim)(obs), 2, axis=-1)
            return mean, jnp.clip(log_std, -20.0, 2.0)

    class Critic(nn.Module):
        hidden: Sequence[int]

        @nn.compact
        def __call__(self, obs, action):
            return Reference.MLP(self.hidden, 1)(jnp.concatenate([obs, action], axis=-1))[..., 0]

    class CriticEnsemble(nn.Module):
        hidden: Sequence[int]
        n_critics: int = 2

        @nn.compact
        def __call__(self, obs, action):
            ensemble = nn.vmap(Reference.Critic, variable_axes={"params": 0}, split_rngs={"params": True},
                               in_axes=None, out_axes=0, axis_size=self.n_critics)
            return ensemble(self.hidden)(obs, action)


# One set of shapes for the whole file: JAX compiles each op once per shape, and that dominates the run time.
H = (16, 16)
_rng = np.random.default_rng(0)
OBS = _rng.standard_normal((5, 4)).astype(np.float32)
ACT = _rng.uniform(-1.0, 1.0, (5, 2)).astype(np.float32)


def leaves_by_path(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def assert_trees_identical(a, b):
    a, b = leaves_by_path(a), leaves_by_path(b)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), k


def init(model, *args, seed=0):
    # eagerly: with the shapes shared across the file, cheaper than compiling every model's init under jit
    return model.init(jax.random.PRNGKey(seed), *args)


def perturb(tree, seed, scale=0.5):
    """Random offsets on every leaf, so that scale/bias parameters are not the identity."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x + scale * rng.standard_normal(x.shape), x.dtype), tree)


def np_layer_norm(h, scale=1.0, bias=0.0, eps=1e-6):
    return (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + eps) * scale + bias


def np_norm(h, mean, var, scale, bias, eps=EPS):
    return (h - mean) / np.sqrt(var + eps) * scale + bias


relu = lambda h: np.maximum(h, 0.0)  # noqa: E731


# --- defaults: the old parameter tree and outputs, bit for bit --------------------------------------------

@pytest.mark.parametrize("new, old, args", [
    (MLP(H, 3), Reference.MLP(H, 3), (OBS,)),
    (MLP(H, 3, nn.tanh, np.sqrt(2.0), 0.01), Reference.MLP(H, 3, nn.tanh, np.sqrt(2.0), 0.01), (OBS,)),
    (DeterministicActor(H, 2), Reference.DeterministicActor(H, 2), (OBS,)),
    (GaussianActor(H, 2), Reference.GaussianActor(H, 2), (OBS,)),
    (CriticEnsemble(H), Reference.CriticEnsemble(H), (OBS, ACT)),
], ids=["mlp", "mlp-orthogonal", "deterministic-actor", "gaussian-actor", "critic-ensemble"])
def test_default_options_reproduce_the_plain_networks_bit_exactly(new, old, args):
    new_vars, old_vars = init(new, *args, seed=7), init(old, *args, seed=7)
    assert list(new_vars) == ["params"]  # no batch_stats collection by default
    assert_trees_identical(new_vars, old_vars)
    assert_trees_identical(new.apply(new_vars, *args), old.apply(old_vars, *args))
    # train=True changes nothing without dropout or batch norm
    assert_trees_identical(new.apply(new_vars, *args, train=True), old.apply(old_vars, *args))


def test_unknown_batch_norm_kind_is_rejected():
    with pytest.raises(ValueError, match="batch_norm"):
        MLP(H, 3, batch_norm="group_norm").init(jax.random.PRNGKey(0), OBS)


# --- dropout and layer norm ----------------------------------------------------------------------------

def test_dropout_is_random_in_train_mode_and_off_in_eval_mode():
    mlp = MLP(H, 3, dropout_rate=0.3)
    variables = init(mlp, OBS)
    plain = MLP(H, 3)
    assert_trees_identical(variables, init(plain, OBS))  # dropout has no parameters

    a = mlp.apply(variables, OBS, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    a_again = mlp.apply(variables, OBS, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    b = mlp.apply(variables, OBS, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    np.testing.assert_array_equal(a, a_again)
    assert not np.allclose(a, b)

    evaluated = mlp.apply(variables, OBS)  # no dropout rng needed
    np.testing.assert_array_equal(evaluated, mlp.apply(variables, OBS, train=False))
    np.testing.assert_array_equal(evaluated, plain.apply(variables, OBS))
    assert not np.allclose(evaluated, a)


def test_hidden_layer_order_is_dense_dropout_layer_norm_activation():
    rate = 0.5
    mlp = MLP(H, 3, dropout_rate=rate, layer_norm=True)
    variables = init(mlp, OBS)
    out, state = mlp.apply(variables, OBS, train=True, rngs={"dropout": jax.random.PRNGKey(3)},
                           capture_intermediates=True, mutable=["intermediates"])
    captured = {name: np.asarray(v["__call__"][0]) for name, v in state["intermediates"].items() if name != "__call__"}
    p = jax.tree_util.tree_map(np.asarray, variables["params"])

    dense = np.asarray(OBS) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    np.testing.assert_allclose(captured["Dense_0"], dense, rtol=1e-5, atol=1e-6)
    dropped = captured["Dropout_0"]
    kept = dropped != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(dropped[kept], dense[kept] / (1 - rate), rtol=1e-5, atol=1e-6)
    # LayerNorm at init (scale 1, bias 0): every row of the pre-activation has mean 0 and variance 1
    normed = captured["LayerNorm_0"]
    np.testing.assert_allclose(normed, np_layer_norm(dropped), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(normed.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(normed.var(-1), 1.0, atol=1e-4)
    # the activation comes last: the next Dense sees relu(LayerNorm(...))
    np.testing.assert_allclose(captured["Dense_1"], relu(normed) @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"],
                               rtol=1e-5, atol=1e-5)
    assert out.shape == (5, 3)


def test_layer_norm_network_matches_numpy():
    mlp = MLP(H, 3, layer_norm=True)
    variables = perturb(init(mlp, OBS), 5)
    p = jax.tree_util.tree_map(np.asarray, variables["params"])
    h = np.asarray(OBS, np.float64)
    for i in range(2):
        h = h @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"]
        h = relu(np_layer_norm(h, p[f"LayerNorm_{i}"]["scale"], p[f"LayerNorm_{i}"]["bias"]))
    expected = h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"]
    np.testing.assert_allclose(mlp.apply(variables, OBS), expected, rtol=1e-4, atol=1e-5)


# --- batch norm ----------------------------------------------------------------------------------------

def np_bn_mlp(p, stats, x, train):
    """NumPy MLP(H, out, batch_norm=...): (norm -> Dense -> relu) x 2 -> norm -> Dense; returns (out, batch stats)."""
    batch = []

    def norm(h, i):
        if train:
            mean, var = h.mean(0), h.var(0)
            batch.append((mean, var))
        else:
            mean, var = stats[f"BatchNorm_{i}"]["mean"], stats[f"BatchNorm_{i}"]["var"]
        return np_norm(h, mean, var, p[f"BatchNorm_{i}"]["scale"], p[f"BatchNorm_{i}"]["bias"])

    h = x
    for i in range(len(H)):
        h = relu(norm(h, i) @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"])
    return norm(h, len(H)) @ p[f"Dense_{len(H)}"]["kernel"] + p[f"Dense_{len(H)}"]["bias"], batch


def test_batch_norm_uses_batch_statistics_in_train_and_running_ones_in_eval():
    momentum = 0.9
    mlp = MLP(H, 3, batch_norm="batch_norm", batch_norm_momentum=momentum)
    x = OBS * 2.0 + 1.0
    variables = init(mlp, x)
    variables = {"params": perturb(variables["params"], 6),
                 "batch_stats": variables["batch_stats"]}
    stats0 = jax.tree_util.tree_map(np.asarray, variables["batch_stats"])
    assert sorted(stats0) == ["BatchNorm_0", "BatchNorm_1", "BatchNorm_2"]
    for i in range(3):  # initial running statistics: mean 0, var 1
        np.testing.assert_array_equal(stats0[f"BatchNorm_{i}"]["mean"], 0.0)
        np.testing.assert_array_equal(stats0[f"BatchNorm_{i}"]["var"], 1.0)
    p = jax.tree_util.tree_map(np.asarray, variables["params"])

    out, updates = mlp.apply(variables, x, train=True, mutable=["batch_stats"])
    expected, batch = np_bn_mlp(p, None, x.astype(np.float64), train=True)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    stats1 = jax.tree_util.tree_map(np.asarray, updates["batch_stats"])
    for i, (mean, var) in enumerate(batch):
        np.testing.assert_allclose(stats1[f"BatchNorm_{i}"]["mean"], (1 - momentum) * mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stats1[f"BatchNorm_{i}"]["var"], momentum + (1 - momentum) * var,
                                   rtol=1e-4, atol=1e-5)

    evaluated = mlp.apply({"params": variables["params"], "batch_stats": stats1}, x)
    expected_eval = np_bn_mlp(p, stats1, x.astype(np.float64), train=False)[0]
    np.testing.assert_allclose(evaluated, expected_eval, rtol=1e-4, atol=1e-4)
    assert not np.allclose(evaluated, out, atol=1e-3)


@pytest.mark.parametrize("kind", ["batch_norm", "batch_renorm"])
def test_batch_norm_rows_are_independent_in_eval_mode_only(kind):
    mlp = MLP(H, 3, batch_norm=kind)
    x = OBS
    other = x.copy()
    other[1:] = other[1:] * 3.0 + 2.0  # same first row, different rest of the batch
    variables = init(mlp, x)
    np.testing.assert_array_equal(mlp.apply(variables, x)[0], mlp.apply(variables, other)[0])
    train_x = mlp.apply(variables, x, train=True, mutable=["batch_stats"])[0]
    train_other = mlp.apply(variables, other, train=True, mutable=["batch_stats"])[0]
    assert not np.allclose(train_x[0], train_other[0])


# --- batch renormalisation -----------------------------------------------------------------------------

# Per feature: r and d clipped high, r and d clipped low, neither clipped.
RENORM_X = np.array([[0.0, 1.0, -1.0], [2.0, 1.1, 0.0], [4.0, 0.9, 1.0], [6.0, 1.0, 2.0]], np.float32)
RUNNING_MEAN = np.array([0.0, 12.0, 0.2], np.float32)
RUNNING_VAR = np.array([0.1, 4.0, 1.0], np.float32)
SCALE = np.array([1.5, -0.5, 0.8], np.float32)
BIAS = np.array([0.1, 0.2, -0.3], np.float32)


def renorm_variables(steps: int):
    return {"params": {"scale": jnp.asarray(SCALE), "bias": jnp.asarray(BIAS)},
            "batch_stats": {"mean": jnp.asarray(RUNNING_MEAN), "var": jnp.asarray(RUNNING_VAR),
                            "steps": jnp.asarray(steps, jnp.int32)}}


def np_renorm_r_d(x):
    x = x.astype(np.float64)
    sigma_b, sigma = np.sqrt(x.var(0) + EPS), np.sqrt(RUNNING_VAR.astype(np.float64) + EPS)
    return sigma_b / sigma, (x.mean(0) - RUNNING_MEAN) / sigma


def test_batch_renorm_initial_state_even_when_initialised_in_train_mode():
    variables = BatchRenorm().init(jax.random.PRNGKey(0), RENORM_X, use_running_average=False)
    assert_trees_identical(variables, {
        "params": {"scale": np.ones(3, np.float32), "bias": np.zeros(3, np.float32)},
        "batch_stats": {"mean": np.zeros(3, np.float32), "var": np.ones(3, np.float32), "steps": np.int32(0)}})


def test_batch_renorm_clips_r_and_d_against_numpy():
    r_raw, d_raw = np_renorm_r_d(RENORM_X)
    # the input is built so that each clipping bound is hit once and the last feature is untouched
    assert r_raw[0] > 3 and d_raw[0] > 5 and r_raw[1] < 1 / 3 and d_raw[1] < -5
    assert 1 / 3 < r_raw[2] < 3 and -5 < d_raw[2] < 5
    r, d = np.clip(r_raw, 1 / 3, 3), np.clip(d_raw, -5, 5)
    x = RENORM_X.astype(np.float64)
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + EPS) * r + d

    layer = BatchRenorm(warmup_steps=10)
    y, updates = layer.apply(renorm_variables(10), RENORM_X, use_running_average=False, mutable=["batch_stats"])
    np.testing.assert_allclose(y, x_hat * SCALE + BIAS, rtol=1e-5, atol=1e-5)
    stats = updates["batch_stats"]
    np.testing.assert_allclose(stats["mean"], 0.99 * RUNNING_MEAN + 0.01 * x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["var"], 0.99 * RUNNING_VAR + 0.01 * x.var(0), rtol=1e-6)
    assert int(stats["steps"]) == 11

    # eval: the running statistics, nothing updated
    y_eval, updates = layer.apply(renorm_variables(10), RENORM_X, use_running_average=True, mutable=["batch_stats"])
    np.testing.assert_allclose(y_eval, np_norm(x, RUNNING_MEAN, RUNNING_VAR, SCALE, BIAS), rtol=1e-5, atol=1e-5)
    assert int(updates["batch_stats"]["steps"]) == 10
    np.testing.assert_array_equal(updates["batch_stats"]["mean"], RUNNING_MEAN)


def test_batch_renorm_warmup_is_plain_batch_norm():
    x = RENORM_X.astype(np.float64)
    y, updates = BatchRenorm(warmup_steps=10).apply(renorm_variables(9), RENORM_X, use_running_average=False,
                                                    mutable=["batch_stats"])
    np.testing.assert_allclose(y, np_norm(x, x.mean(0), x.var(0), SCALE, BIAS), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.99 * RUNNING_MEAN + 0.01 * x.mean(0), rtol=1e-6)
    assert int(updates["batch_stats"]["steps"]) == 10


def test_batch_renorm_gradient_treats_r_and_d_as_constants():
    r_raw, d_raw = np_renorm_r_d(RENORM_X)
    r, d = jnp.asarray(np.clip(r_raw, 1 / 3, 3), jnp.float32), jnp.asarray(np.clip(d_raw, -5, 5), jnp.float32)
    weights = np.random.default_rng(0).standard_normal(RENORM_X.shape).astype(np.float32)
    variables = renorm_variables(10)

    def loss(x):
        return jnp.sum(weights * BatchRenorm(warmup_steps=10).apply(variables, x, use_running_average=False,
                                                                     mutable=["batch_stats"])[0])

    def reference(x):
        x_hat = (x - x.mean(0)) / jnp.sqrt(x.var(0) + EPS) * r + d
        return jnp.sum(weights * (x_hat * SCALE + BIAS))

    x = jnp.asarray(RENORM_X)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(x), jax.jit(jax.grad(reference))(x), rtol=1e-4, atol=1e-5)


def test_mlp_batch_renorm_matches_batch_norm_until_the_warmup_ends():
    kwargs = dict(hidden=H, out_dim=3, batch_norm_momentum=0.9)
    bn, brn = MLP(**kwargs, batch_norm="batch_norm"), MLP(**kwargs, batch_norm="batch_renorm", renorm_warmup_steps=2)
    xs = [OBS * (1.0 + i) + i for i in range(3)]
    bn_vars = init(bn, xs[0])
    bn_vars = {"params": perturb(bn_vars["params"], 1), "batch_stats": bn_vars["batch_stats"]}
    rename = lambda tree: {k.replace("BatchNorm", "BatchRenorm"): v for k, v in tree.items()}  # noqa: E731
    brn_vars = init(brn, xs[0])
    assert sorted(brn_vars["params"]) == sorted(rename(bn_vars["params"]))
    assert sorted(brn_vars["batch_stats"]) == ["BatchRenorm_0", "BatchRenorm_1", "BatchRenorm_2"]
    brn_vars = {"params": rename(bn_vars["params"]), "batch_stats": brn_vars["batch_stats"]}

    for step, x in enumerate(xs):
        bn_out, bn_upd = bn.apply(bn_vars, x, train=True, mutable=["batch_stats"])
        brn_out, brn_upd = brn.apply(brn_vars, x, train=True, mutable=["batch_stats"])
        if step < 2:  # warm-up: plain batch norm, same running statistics
            np.testing.assert_allclose(brn_out, bn_out, rtol=1e-4, atol=1e-4)
            for name, stats in bn_upd["batch_stats"].items():
                renamed = brn_upd["batch_stats"][name.replace("BatchNorm", "BatchRenorm")]
                np.testing.assert_allclose(renamed["mean"], stats["mean"], rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(renamed["var"], stats["var"], rtol=1e-4, atol=1e-5)
        else:  # renormalised towards running statistics that lag the batch ones
            assert not np.allclose(brn_out, bn_out, atol=1e-2)
        assert int(brn_upd["batch_stats"]["BatchRenorm_0"]["steps"]) == step + 1
        bn_vars = {"params": bn_vars["params"], **bn_upd}
        brn_vars = {"params": brn_vars["params"], **brn_upd}


# --- critics and actors ----------------------------------------------------------------------------------

def test_critic_ensemble_quantile_heads():
    scalar = CriticEnsemble(H)
    assert scalar.apply(init(scalar, OBS, ACT), OBS, ACT).shape == (2, 5)
    tqc = CriticEnsemble(H, n_quantiles=25)
    variables = init(tqc, OBS, ACT)
    assert variables["params"]["VmapCritic_0"]["MLP_0"]["Dense_2"]["kernel"].shape == (2, 16, 25)
    q = np.asarray(tqc.apply(variables, OBS, ACT))
    assert q.shape == (2, 5, 25)
    assert not np.allclose(q[0], q[1])
    assert not np.allclose(q[0, :, 0], q[0, :, 1])  # the quantile heads differ too


def test_critic_ensemble_draws_one_dropout_mask_per_member():
    critic = CriticEnsemble(H, torso=TorsoOptions(dropout_rate=0.5, layer_norm=True))
    variables = init(critic, OBS, ACT)
    twins = jax.tree_util.tree_map(lambda p: jnp.broadcast_to(p[:1], p.shape), variables)  # identical members
    q_eval = critic.apply(twins, OBS, ACT)
    np.testing.assert_array_equal(q_eval[0], q_eval[1])
    q_train = critic.apply(twins, OBS, ACT, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    assert not np.allclose(q_train[0], q_train[1])


def test_critic_ensemble_keeps_batch_statistics_per_member():
    critic = CriticEnsemble(H, torso=TorsoOptions(batch_norm="batch_renorm", batch_norm_momentum=0.5,
                                                renorm_warmup_steps=0))
    variables = init(critic, OBS, ACT)
    q, updates = critic.apply(variables, OBS, ACT, train=True, mutable=["batch_stats"])
    assert q.shape == (2, 5)
    stats = updates["batch_stats"]["VmapCritic_0"]["MLP_0"]
    np.testing.assert_array_equal(stats["BatchRenorm_0"]["steps"], [1, 1])
    inputs = np.concatenate([OBS, ACT], axis=-1)
    np.testing.assert_allclose(stats["BatchRenorm_0"]["mean"], np.tile(0.5 * inputs.mean(0), (2, 1)),
                               rtol=1e-5, atol=1e-6)
    hidden_means = np.asarray(stats["BatchRenorm_1"]["mean"])
    assert hidden_means.shape == (2, 16) and not np.allclose(hidden_means[0], hidden_means[1])


@pytest.mark.parametrize("actor_cls", [DeterministicActor, GaussianActor])
def test_actors_forward_the_options_and_the_train_flag(actor_cls):
    actor = actor_cls(H, 2, torso=TorsoOptions(layer_norm=True, dropout_rate=0.2, batch_norm="batch_renorm"))
    variables = init(actor, OBS)
    torso = variables["params"]["MLP_0"]
    assert {"LayerNorm_0", "LayerNorm_1", "BatchRenorm_0", "BatchRenorm_1", "BatchRenorm_2"} <= set(torso)
    assert set(variables["batch_stats"]["MLP_0"]) == {"BatchRenorm_0", "BatchRenorm_1", "BatchRenorm_2"}

    def run(key):
        out, _ = actor.apply(variables, OBS, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
        return np.concatenate(jax.tree_util.tree_leaves(out), axis=-1)

    a, b = run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(2))
    assert a.shape == (5, 2 if actor_cls is DeterministicActor else 4)
    assert not np.allclose(a, b)
    eval_out = np.concatenate(jax.tree_util.tree_leaves(actor.apply(variables, OBS)), axis=-1)
    np.testing.assert_array_equal(eval_out, np.concatenate(jax.tree_util.tree_leaves(actor.apply(variables, OBS)), -1))
    if actor_cls is DeterministicActor:
        assert np.all(np.abs(a) <= 1.0)
