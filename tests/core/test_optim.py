"""The optimiser step, written once, against the optax update written out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from polyak.core.optim import apply_gradients, gradient_step


def test_apply_gradients_is_one_optax_step():
    params = {"w": jnp.asarray([1.0, -2.0]), "b": jnp.asarray(0.5)}
    grads = {"w": jnp.asarray([0.1, 0.3]), "b": jnp.asarray(-1.0)}
    sgd = optax.sgd(0.5)
    new, state = apply_gradients(sgd, params, grads, sgd.init(params))
    np.testing.assert_allclose(new["w"], [0.95, -2.15])
    np.testing.assert_allclose(new["b"], 1.0)
    adam = optax.adam(0.01)
    new, state = apply_gradients(adam, params, grads, adam.init(params))
    np.testing.assert_allclose(new["w"], [0.99, -2.01], rtol=1e-5)  # Adam's first step: -lr sign(g)
    assert int(state[0].count) == 1


def test_gradient_step_returns_the_loss_and_aux_at_the_old_parameters():
    def loss_fn(w, x):
        return jnp.sum((w * x - 1.0) ** 2), w * x

    sgd = optax.sgd(0.1)
    w, x = jnp.asarray([2.0, 0.0]), jnp.asarray([1.0, 3.0])
    new, _, loss, aux = gradient_step(sgd, loss_fn, w, sgd.init(w), x)
    assert float(loss) == 2.0  # (2 - 1)^2 + (0 - 1)^2
    np.testing.assert_allclose(aux, [2.0, 0.0])
    grad = jax.grad(lambda w: loss_fn(w, x)[0])(w)  # 2 (w x - 1) x = [2, -6]
    np.testing.assert_allclose(new, w - 0.1 * grad)
