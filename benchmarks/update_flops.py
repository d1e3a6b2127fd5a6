"""XLA's FLOP count of one gradient update of polyak's actor-critic agents, at given space sizes.

    python -m benchmarks.update_flops --algos td3,td3_bc,sac --obs-dim 17 --act-dim 6 --batch-size 256

Each agent is built with its defaults (networks [256, 256], two critics, ...) and one call of its `update` on a
batch of zeros is compiled; the table lists the compiled program's `flops` from XLA's cost analysis. A branch
under `lax.cond` (the delayed actor step of TD3 and TD3+BC, CrossQ's) is counted in full, so the figure is that
of an update that includes the actor step. A count, not a timing: it does not depend on the machine's load.

    python -m benchmarks.update_flops --algos cql,td3_bc --time 20

`--time N` also runs the compiled update (after one warm-up call) N times, three times over, on a batch of random
numbers, and adds the median rate: updates per second and GFLOP per second (the count over the time), to set beside
the machine's matmul rate, which `--matmul` measures: a jitted chain of 50 products (m x 256) @ (256 x 256) for
m = 256, 2560 and 7936 (a batch; ten sampled actions per row; CQL's rows per critic), median of three runs.
A timing does depend on the load: pin it (`taskset -c 0`) and say what else ran.
"""

from __future__ import annotations

import argparse
from typing import Any

ALGOS = ("sac", "td3", "ddpg", "tqc", "crossq", "redq", "droq", "sac_n", "td3_bc", "iql", "awac", "cql")


def _compiled_update(algo: str, obs_dim: int, act_dim: int, batch_size: int, random_batch: bool = False):
    """(compiled update, agent state, batch, FLOP count) of `algo`'s default agent at these sizes."""
    import jax
    import jax.numpy as jnp

    import polyak
    from polyak.core.types import Transition

    cls: Any = polyak.ALGORITHMS[algo]
    agent = cls.agent_cls(cls.config_cls(batch_size=batch_size), obs_dim, act_dim)
    state = agent.init(jax.random.PRNGKey(0))
    if random_batch:  # a timing runs on numbers a dataset could hold (zeros could take other paths, e.g. in exp)
        k = jax.random.split(jax.random.PRNGKey(2), 3)
        batch = Transition(jax.random.normal(k[0], (batch_size, obs_dim)),
                           jax.random.uniform(k[1], (batch_size, act_dim), minval=-1.0, maxval=1.0),
                           jax.random.normal(k[2], (batch_size,)), jax.random.normal(k[0], (batch_size, obs_dim)),
                           jnp.zeros(batch_size))
    else:
        batch = Transition(jnp.zeros((batch_size, obs_dim)), jnp.zeros((batch_size, act_dim)), jnp.zeros(batch_size),
                           jnp.zeros((batch_size, obs_dim)), jnp.zeros(batch_size))
    compiled = jax.jit(agent.update).lower(state, batch, jax.random.PRNGKey(1)).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # some JAX versions return one dict per program
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        raise RuntimeError(f"XLA cost analysis gave no FLOP count for {algo}: {cost!r}")
    return compiled, state, batch, float(cost["flops"])


def update_flops(algo: str, obs_dim: int, act_dim: int, batch_size: int) -> float:
    return _compiled_update(algo, obs_dim, act_dim, batch_size)[3]


def update_rate(algo: str, obs_dim: int, act_dim: int, batch_size: int, calls: int) -> tuple[float, float]:
    """(FLOP count, median updates per second over three runs of `calls` calls after one warm-up call)."""
    import time

    import jax

    compiled, state, batch, flops = _compiled_update(algo, obs_dim, act_dim, batch_size, random_batch=True)
    key = jax.random.PRNGKey(1)
    state = jax.block_until_ready(compiled(state, batch, key)[0])
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(calls):
            state = compiled(state, batch, jax.random.fold_in(key, i))[0]
        jax.block_until_ready(state)
        rates.append(calls / (time.perf_counter() - start))
    return flops, sorted(rates)[1]


def matmul_rate(rows: int, width: int = 256, chain: int = 50) -> float:
    """f32 GFLOP/s of a jitted chain of `chain` products (rows x width) @ (width x width), median of three runs."""
    import time

    import jax
    import jax.numpy as jnp

    a, b = jnp.full((rows, width), 0.01, jnp.float32), jnp.full((width, width), 0.01, jnp.float32)
    f = jax.jit(lambda x, w: jax.lax.fori_loop(0, chain, lambda i, y: (y @ w) * 0.5, x))
    jax.block_until_ready(f(a, b))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(f(a, b))
        times.append(time.perf_counter() - start)
    return chain * 2.0 * rows * width * width / sorted(times)[1] / 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.update_flops", description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="td3,td3_bc", help=f"comma-separated from {','.join(ALGOS)} (default td3,td3_bc)")
    p.add_argument("--obs-dim", type=int, default=17, help="observation size (default 17, HalfCheetah)")
    p.add_argument("--act-dim", type=int, default=6, help="action size (default 6, HalfCheetah)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per batch (default 256)")
    p.add_argument("--time", type=int, default=0, metavar="N",
                   help="also time N calls of the compiled update (3 runs, median): updates/s and GFLOP/s")
    p.add_argument("--matmul", action="store_true", help="also print this machine's f32 matmul rate (GFLOP/s)")
    args = p.parse_args(argv)
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    bad = [a for a in algos if a not in ALGOS]
    if bad or not algos:
        p.error(f"--algos: choose from {','.join(ALGOS)}; got {args.algos!r}")
    if args.time < 0:
        p.error(f"--time must be >= 0, got {args.time}")
    sizes = (args.obs_dim, args.act_dim, args.batch_size)
    head = f"| algorithm | MFLOP per update (obs {args.obs_dim}, act {args.act_dim}, batch {args.batch_size}) |"
    print(head + (" updates/s | GFLOP/s |" if args.time else ""))
    print("|---|---|" + ("---|---|" if args.time else ""))
    for algo in algos:
        if args.time:
            flops, rate = update_rate(algo, *sizes, args.time)
            print(f"| {algo} | {flops / 1e6:.1f} | {rate:.2f} | {flops * rate / 1e9:.1f} |")
        else:
            print(f"| {algo} | {update_flops(algo, *sizes) / 1e6:.1f} |")
    if args.matmul:
        print("\n| matmul (m x 256) @ (256 x 256) | GFLOP/s |\n|---|---|")
        for rows in (256, 2560, 7936):
            print(f"| m = {rows} | {matmul_rate(rows):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
