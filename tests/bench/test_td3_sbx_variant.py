"""benchmarks.td3_sbx_variant: polyak's TD3 with exactly SBX's two deviations, checked against TD3 itself."""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.td3_sbx_variant import variant_class
from polyak.algos.offpolicy.td3 import TD3Agent, TD3Config
from polyak.core.losses import polyak_average
from polyak.core.types import Transition


def _close(a, b):
    return all(np.allclose(x, y, atol=1e-6) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_targets_follow_every_critic_step_and_the_actor_maximises_the_min_over_critics():
    cfg = TD3Config(actor_hidden=(8,), critic_hidden=(8,), tau=0.1, policy_delay=2)
    paper, sbx = TD3Agent(cfg, 3, 2), variant_class().agent_cls(cfg, 3, 2)
    paper_update, sbx_update = jax.jit(paper.update), jax.jit(sbx.update)
    k = jax.random.split(jax.random.PRNGKey(0), 6)
    batch = Transition(jax.random.normal(k[0], (16, 3)), jnp.tanh(jax.random.normal(k[1], (16, 2))),
                       jax.random.normal(k[2], (16,)), jax.random.normal(k[3], (16, 3)), jnp.zeros(16))
    state = paper.init(k[4])
    # step 1 (not delayed): the same critic step; the paper's targets stay, SBX's move by tau towards the online nets
    p1, _, _ = paper_update(state, batch, k[5])
    s1, _, _ = sbx_update(state, batch, k[5])
    assert _close(p1.critic_params, s1.critic_params)
    assert _close(p1.target_critic_params, state.target_critic_params)
    assert _close(p1.target_actor_params, state.target_actor_params)
    assert _close(s1.target_critic_params, polyak_average(s1.critic_params, state.target_critic_params, 0.1))
    assert not _close(s1.target_critic_params, state.target_critic_params)
    # step 2 (delayed) from the same state: the actor's gradient is that of -mean min_j Q_j(s, mu(s)), not Q_1's
    p2, _, _ = paper_update(p1, batch, k[5])
    s2, _, _ = sbx_update(p1, batch, k[5])

    def loss(actor_params, reduce):
        q = paper.critic.apply(p2.critic_params, batch.obs, paper.actor.apply(actor_params, batch.obs))
        return -reduce(q).mean()

    g_min = jax.grad(loss)(p1.actor_params, lambda q: q.min(axis=0))
    g_q1 = jax.grad(loss)(p1.actor_params, lambda q: q[0])
    first = lambda g: jax.tree.leaves(g)[0]  # noqa: E731  (Adam's first step moves each weight by -lr sign(g))
    step = lambda new: jax.tree.leaves(jax.tree.map(jnp.subtract, new, p1.actor_params))[0]  # noqa: E731
    assert np.array_equal(np.sign(step(s2.actor_params)), -np.sign(first(g_min)))
    assert np.array_equal(np.sign(step(p2.actor_params)), -np.sign(first(g_q1)))
    assert not np.array_equal(np.sign(first(g_min)), np.sign(first(g_q1)))
