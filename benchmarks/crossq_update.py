"""CrossQ's gradient step alone, polyak against SBX, at `benchmarks.bench_mujoco`'s identical settings.

Run it as ``python -m benchmarks.crossq_update`` (``--help`` lists the options; SBX from ``pip install -e
".[bench]"``). Each library's update runs on a fixed random batch of HalfCheetah-v5's sizes (17 observations, 6
actions, batch 256, critics [1024, 1024] with batch renormalisation, policy delay 3): ``--steps-per-call`` K
gradient steps per jitted call (K = 3 holds one actor step; K = 1 is what one env step of the host loop runs).
polyak's call is the host loop's own (`offpolicy.learner.AgentKept` over K updates, the agent state not donated),
SBX's its ``_train``. Printed: XLA's FLOP count of one call and calls/s (`benchmarks.bench`'s best of 5 rounds), as
gradient steps/s.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.bench import _best_rate, _xla_cost
from benchmarks.bench_mujoco import MujocoConfig, build

ENV_ID = "HalfCheetah-v5"


def random_rows(rng: np.random.Generator, n: int, obs_dim: int, act_dim: int) -> dict[str, np.ndarray]:
    return {"obs": rng.standard_normal((n, obs_dim)).astype(np.float32),
            "action": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
            "reward": rng.standard_normal(n).astype(np.float32),
            "next_obs": rng.standard_normal((n, obs_dim)).astype(np.float32), "done": np.zeros(n, np.float32)}


def polyak_update(cfg: MujocoConfig, k: int, seed: int) -> tuple[float, float]:
    from polyak.algos.offpolicy.learner import AgentKept
    from polyak.core.types import Transition

    model = build("polyak", "crossq", ENV_ID, seed, 10_000, cfg)
    agent = model.agent
    rows = random_rows(np.random.default_rng(seed), k * cfg.batch_size, agent.obs_dim, agent.act_dim)
    batches = Transition(*(jnp.asarray(rows[c]).reshape((k, cfg.batch_size) + rows[c].shape[1:])
                           for c in ("obs", "action", "reward", "next_obs", "done")))
    key = jax.random.PRNGKey(seed)

    def k_updates(learner, batches):
        def body(state, batch):
            return agent.update(state, batch, key)[0], None
        return learner._replace(agent=jax.lax.scan(body, learner.agent, batches)[0])

    call = AgentKept(k_updates)
    box = [jax.tree.map(jnp.array, model.learner)]
    n_flops = _xla_cost(call.lower(box[0], batches).compile())["flops"]

    def one_call():
        box[0] = call(box[0], batches)
        return box[0].agent
    return n_flops, _best_rate(one_call, jax.block_until_ready)


def sbx_update(cfg: MujocoConfig, k: int, seed: int) -> tuple[float, float]:
    from sbx.common.type_aliases import ReplayBufferSamplesNp

    model = build("sbx", "crossq", ENV_ID, seed, 10_000, cfg)
    model._setup_learn(cfg.batch_size)  # noqa: SLF001  (the replay buffer and logger, as learn() makes them)
    obs_dim, act_dim = model.observation_space.shape[0], model.action_space.shape[0]
    rows = random_rows(np.random.default_rng(seed), k * cfg.batch_size, obs_dim, act_dim)
    data = ReplayBufferSamplesNp(rows["obs"], rows["action"], rows["next_obs"], rows["done"], rows["reward"],
                                 np.full(k * cfg.batch_size, cfg.gamma, np.float32))
    policy = model.policy
    state = {"qf": policy.qf_state, "actor": policy.actor_state, "ent": model.ent_coef_state, "key": model.key,
             "n": 0}

    def args():  # the actor steps where SBX's learn puts them: every policy_delay-th update over the run
        offset = (state["n"] + 1) % model.policy_delay
        return (model.target_entropy, k, data, model.policy_delay, offset, state["qf"], state["actor"],
                state["ent"], state["key"])
    train = model._train  # noqa: SLF001  (a classmethod over a jitted function)
    jitted = getattr(train, "__func__", train)
    n_flops = _xla_cost(jitted.lower(type(model), *args()).compile())["flops"]

    def one_call():
        state["qf"], state["actor"], state["ent"], state["key"], _ = train(*args())
        state["n"] += k
        return state["qf"]
    return n_flops, _best_rate(one_call, jax.block_until_ready)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libs", default="polyak,sbx", help="comma-separated from polyak,sbx (default: both)")
    parser.add_argument("--steps-per-call", type=int, default=3, metavar="K", help="gradient steps per call (3)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of each library (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    libs = [lib for lib in args.libs.split(",") if lib]
    unknown = set(libs) - {"polyak", "sbx"}
    if unknown or args.steps_per_call < 1:
        parser.error(f"--libs takes polyak and sbx (got {sorted(unknown)}), --steps-per-call >= 1")
    cfg, k = MujocoConfig(), args.steps_per_call
    fns = {"polyak": polyak_update, "sbx": sbx_update}
    for repeat in range(args.repeats):
        for lib in libs:
            n_flops, calls = fns[lib](cfg, k, args.seed)
            print(f"repeat {repeat + 1} {lib:6s} K={k}: {n_flops / 1e9:.2f} GFLOP per call, {calls:.2f} calls/s = "
                  f"{k * calls:.1f} gradient steps/s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
