"""Host columns: the host loops' in-place fill and the jitted loops' device pack give the same array."""

import jax.numpy as jnp
import numpy as np

from polyak.algos.packing import Columns


def test_layout_fill_pack_unpack():
    cols = Columns.of(obs=(3,), action=(1,), reward=(), done=(), random=())
    assert cols.width == 7 and cols.slices["reward"] == slice(4, 5)
    rng = np.random.default_rng(0)
    values = {"obs": rng.normal(size=(2, 3)), "action": rng.normal(size=(2, 1)), "reward": rng.normal(size=2),
              "done": np.array([True, False])}
    host = cols.fill(cols.zeros(2), dict(values, random=1.0))
    device = cols.pack(dict(values, random=jnp.float32(1.0)), 2)
    assert host.dtype == np.float32 and device.dtype == jnp.float32
    np.testing.assert_array_equal(host, np.asarray(device))
    out = cols.unpack(jnp.asarray(host))
    assert out["obs"].shape == (2, 3) and out["action"].shape == (2, 1)  # a one-wide vector stays 2-D
    assert out["reward"].shape == (2,) and out["random"].shape == (2,)  # scalars per row are 1-D
    np.testing.assert_array_equal(out["done"], [1.0, 0.0])
    np.testing.assert_array_equal(out["obs"], values["obs"].astype(np.float32))
    assert hash(cols) == hash(Columns.of(obs=(3,), action=(1,), reward=(), done=(), random=()))
