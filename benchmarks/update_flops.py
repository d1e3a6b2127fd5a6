"""XLA's FLOP count of one gradient update of polyak's actor-critic agents, at given space sizes.

    python -m benchmarks.update_flops --algos td3,td3_bc,sac --obs-dim 17 --act-dim 6 --batch-size 256

Each agent is built with its defaults (networks [256, 256], two critics, ...) and one call of its `update` on a
batch of zeros is compiled; the table lists the compiled program's `flops` from XLA's cost analysis. A branch
under `lax.cond` (the delayed actor step of TD3 and TD3+BC, CrossQ's) is counted in full, so the figure is that
of an update that includes the actor step. A count, not a timing: it does not depend on the machine's load.
"""

from __future__ import annotations

import argparse
from typing import Any

ALGOS = ("sac", "td3", "ddpg", "tqc", "crossq", "redq", "droq", "sac_n", "td3_bc", "iql", "awac", "cql")


def update_flops(algo: str, obs_dim: int, act_dim: int, batch_size: int) -> float:
    import jax
    import jax.numpy as jnp

    import polyak
    from polyak.core.types import Transition

    cls: Any = polyak.ALGORITHMS[algo]
    agent = cls.agent_cls(cls.config_cls(batch_size=batch_size), obs_dim, act_dim)
    state = agent.init(jax.random.PRNGKey(0))
    batch = Transition(jnp.zeros((batch_size, obs_dim)), jnp.zeros((batch_size, act_dim)), jnp.zeros(batch_size),
                       jnp.zeros((batch_size, obs_dim)), jnp.zeros(batch_size))
    cost = jax.jit(agent.update).lower(state, batch, jax.random.PRNGKey(1)).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # some JAX versions return one dict per program
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        raise RuntimeError(f"XLA cost analysis gave no FLOP count for {algo}: {cost!r}")
    return float(cost["flops"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.update_flops", description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="td3,td3_bc", help=f"comma-separated from {','.join(ALGOS)} (default td3,td3_bc)")
    p.add_argument("--obs-dim", type=int, default=17, help="observation size (default 17, HalfCheetah)")
    p.add_argument("--act-dim", type=int, default=6, help="action size (default 6, HalfCheetah)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per batch (default 256)")
    args = p.parse_args(argv)
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    bad = [a for a in algos if a not in ALGOS]
    if bad or not algos:
        p.error(f"--algos: choose from {','.join(ALGOS)}; got {args.algos!r}")
    print(f"| algorithm | MFLOP per update (obs {args.obs_dim}, act {args.act_dim}, batch {args.batch_size}) |")
    print("|---|---|")
    for algo in algos:
        print(f"| {algo} | {update_flops(algo, args.obs_dim, args.act_dim, args.batch_size) / 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
