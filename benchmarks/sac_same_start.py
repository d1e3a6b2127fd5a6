"""polyak's SAC update against SBX's from the same start: identical parameters and batch, K updates each.

    python -m benchmarks.sac_same_start --env Hopper-v5 --updates 3

A cross-check of the update alone (needs sbx-rl, the optional benchmark dependency). SBX's initial actor and
critic parameters are copied into polyak's layout (SBX's separate mean and log-std layers become polyak's one
output layer); the policy is made near-deterministic (log-std head 0 weights, bias -20: std 2e-9) and the
temperature fixed at 1e-10, so that the two libraries' different random streams do not enter: what is left of the
update (soft target, critic loss, Polyak averaging, actor loss on the updated critics, Adam) must then agree to
float precision. Printed per update: both critic and actor losses; after the last, the 99th percentile and the
largest parameter difference in units of one Adam step (the learning rate). The log-std head itself is left out:
its gradients are ~1e-9 and Adam's normalisation turns their rounding into full steps. The stochastic parts
(log pi of the squashed Gaussian, the temperature's gradient) are not covered here (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse

import numpy as np


def run(env_id: str, updates: int, batch_size: int = 256, lr: float = 3e-4, seed: int = 0) -> dict:
    import gymnasium
    import jax
    import jax.numpy as jnp
    import sbx

    from polyak.algos.offpolicy.sac import SACAgent, SACConfig
    from polyak.core.types import Transition

    env = gymnasium.make(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    model = sbx.SAC("MlpPolicy", env, seed=seed, ent_coef=1e-10, learning_rate=lr, tau=0.005, gamma=0.99,
                    policy_kwargs={"net_arch": [256, 256]})
    pol = model.policy
    actor_sbx = jax.tree.map(lambda x: np.array(x, copy=True), pol.actor_state.params)
    actor_sbx["params"]["Dense_3"]["kernel"][:] = 0.0  # the log-std head: std = exp(-20)
    actor_sbx["params"]["Dense_3"]["bias"][:] = -20.0
    a = actor_sbx["params"]
    actor = {"params": {"MLP_0": {
        "Dense_0": a["Dense_0"], "Dense_1": a["Dense_1"],
        "Dense_2": {"kernel": np.concatenate([a["Dense_2"]["kernel"], a["Dense_3"]["kernel"]], 1),
                    "bias": np.concatenate([a["Dense_2"]["bias"], a["Dense_3"]["bias"]])}}}}
    q = pol.qf_state.params["params"]["VmapContinuousCritic_0"]
    critic = {"params": {"VmapCritic_0": {"MLP_0": {k: q[k] for k in ("Dense_0", "Dense_1", "Dense_2")}}}}
    agent = SACAgent(SACConfig(ent_coef=1e-10, learning_rate=lr, batch_size=batch_size), obs_dim, act_dim)
    state = agent.init(jax.random.PRNGKey(seed))
    if jax.tree.structure(critic) != jax.tree.structure(state.critic_params):
        raise SystemExit("SBX's critic parameters do not map onto polyak's (an SBX version with another layout)")
    actor, critic = jax.tree.map(jnp.asarray, actor), jax.tree.map(jnp.asarray, critic)
    state = state._replace(actor_params=actor, critic_params=critic, target_critic_params=critic,
                           actor_opt=agent.optimizer.init(actor), critic_opt=agent.optimizer.init(critic))
    actor_sbx = jax.tree.map(jnp.asarray, actor_sbx)
    pol.actor_state = pol.actor_state.replace(params=actor_sbx, opt_state=pol.actor_state.tx.init(actor_sbx))

    rng = np.random.default_rng(seed)
    batch = Transition(*(jnp.asarray(x, jnp.float32) for x in (
        rng.normal(size=(batch_size, obs_dim)), rng.uniform(-1, 1, size=(batch_size, act_dim)),
        3 * rng.normal(size=batch_size), rng.normal(size=(batch_size, obs_dim)), rng.uniform(size=batch_size) < 0.1)))
    update = jax.jit(agent.update)
    key, losses = jax.random.PRNGKey(seed + 1), []
    for i in range(updates):
        qf_state, (qf_loss, _), _ = sbx.SAC.update_critic(
            pol.actor_state, pol.qf_state, model.ent_coef_state, batch.obs, batch.action, batch.next_obs,
            batch.reward, batch.terminated, jnp.full(batch_size, 0.99), key)
        qf_state = sbx.SAC.soft_update(0.005, qf_state)
        actor_state, qf_state, _, actor_loss, _, _ = sbx.SAC.update_actor_and_temperature(
            pol.actor_state, qf_state, model.ent_coef_state, batch.obs, model.target_entropy, key)
        pol.qf_state, pol.actor_state = qf_state, actor_state
        state, metrics, _ = update(state, batch, key)
        losses.append((float(qf_loss), float(metrics["critic_loss"]), float(actor_loss), float(metrics["actor_loss"])))
        key = jax.random.fold_in(key, i)

    def in_steps(pairs) -> tuple[float, float]:
        d = np.concatenate([np.abs(np.asarray(x) - np.asarray(y)).ravel() for x, y in pairs]) / lr
        return float(np.quantile(d, 0.99)), float(d.max())

    qs, qp = pol.qf_state, state.critic_params["params"]["VmapCritic_0"]["MLP_0"]
    tp = state.target_critic_params["params"]["VmapCritic_0"]["MLP_0"]
    a_s, a_p = pol.actor_state.params["params"], state.actor_params["params"]["MLP_0"]
    w = ("kernel", "bias")
    return {
        "losses": losses,
        "critic": in_steps((qp[k][x], qs.params["params"]["VmapContinuousCritic_0"][k][x]) for k in qp for x in w),
        "target critic": in_steps((tp[k][x], qs.target_params["params"]["VmapContinuousCritic_0"][k][x])
                                  for k in tp for x in w),
        "actor hidden layers": in_steps((a_p[k][x], a_s[k][x]) for k in ("Dense_0", "Dense_1") for x in w),
        "actor mean head": in_steps([(a_p["Dense_2"]["kernel"][:, :act_dim], a_s["Dense_2"]["kernel"]),
                                     (a_p["Dense_2"]["bias"][:act_dim], a_s["Dense_2"]["bias"])]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sac_same_start", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Hopper-v5", help="Gymnasium env id for the spaces (default Hopper-v5)")
    p.add_argument("--updates", type=int, default=3, help="updates of each library (default 3)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = run(args.env, args.updates, seed=args.seed)
    for i, (qs, qp, a_s, a_p) in enumerate(out["losses"]):
        print(f"update {i + 1}: critic loss SBX {qs:.6f} polyak {qp:.6f}; actor loss SBX {a_s:.6f} polyak {a_p:.6f}")
    print(f"after {args.updates} updates, |polyak - SBX| in units of one Adam step (lr): 99th percentile, largest")
    for name in ("critic", "target critic", "actor hidden layers", "actor mean head"):
        q99, top = out[name]
        print(f"  {name}: {q99:.2e}, {top:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
