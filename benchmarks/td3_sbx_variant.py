"""polyak's TD3 changed in SBX's two ways, on a MuJoCo task: does that explain SBX's higher returns?

    python -m benchmarks.td3_sbx_variant --env Hopper-v5 --seeds 3 --out td3-sbx-variant.json
    python -m benchmarks.td3_sbx_variant --report td3-sbx-variant.json hopper-td3-polyak.json hopper-td3-sbx.json

SBX's TD3 (sbx-rl 0.28.0, `TD3._train`) differs from the TD3 paper (Fujimoto et al. 2018, Algorithm 1), which
Stable-Baselines3 and polyak follow, in two places:

1. the target networks (actor and critics) are Polyak-averaged after **every** critic step, not only on the
   delayed steps: at policy_delay 2 they move twice as fast;
2. the delayed actor step maximises **min_j Q_j(s, mu(s))** over both critics, not Q_1(s, mu(s)).

`SBXStyleTD3` is polyak's TD3 with exactly these two changes (everything else, the loop included, is polyak's);
it runs with `benchmarks.bench_mujoco`'s hyperparameters (`MujocoConfig`), evaluation and JSON layout, one fresh
process per seed. ``--report`` prints, for each file, the final return and the mean of each run's last five
evaluations (mean ± sample std over seeds) and exact two-sided Mann–Whitney p-values between the files (needs
SciPy). A benchmark, not a test: about 20 min per 100k-step Hopper seed on one core of a 2-core AMD EPYC.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from typing import Any

import numpy as np

from benchmarks.bench import RESULT_MARKER, library_versions, machine_info, run_worker
from benchmarks.bench_mujoco import ENVS, VERSION_PACKAGES, MujocoConfig, run_one

LIB = "polyak-sbx-td3"


def variant_class() -> type:
    """polyak's TD3 class with SBX's target schedule and actor objective (the module docstring's 1. and 2.)."""
    import jax
    import jax.numpy as jnp

    from polyak.algos.offpolicy.td3 import TD3, TD3Agent
    from polyak.core.losses import bootstrap_target, polyak_average
    from polyak.core.types import UpdateInfo

    @dataclasses.dataclass(frozen=True)
    class SBXStyleTD3Agent(TD3Agent):
        def q1(self, critic_params, obs, action):
            """2. what the actor maximises (`actor_step`): min_j Q_j(s, mu(s)) rather than Q_1."""
            return self.critic.apply(critic_params, obs, action).min(axis=0)

        def update(self, state, batch, key):
            cfg = self.cfg
            next_action = self.smoothed_target_action(state.target_actor_params, batch.next_obs, key)
            next_q = self.critic.apply(state.target_critic_params, batch.next_obs, next_action).min(axis=0)
            y = jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, cfg.gamma, next_q))
            critic_params, critic_opt, critic_loss, q = self.critic_step(state.critic_params, state.critic_opt,
                                                                         batch, y)
            n_updates = state.n_updates + 1
            # 1. both targets follow after every critic step (the actor's before its own step, as in SBX)
            state = state._replace(
                critic_params=critic_params, critic_opt=critic_opt, n_updates=n_updates,
                target_critic_params=polyak_average(critic_params, state.target_critic_params, cfg.tau),
                target_actor_params=polyak_average(state.actor_params, state.target_actor_params, cfg.tau))

            def delayed(state):
                actor_params, actor_opt, loss = self.actor_step(state, state.critic_params, batch.obs)
                return state._replace(actor_params=actor_params, actor_opt=actor_opt, last_actor_loss=loss)

            state = jax.lax.cond(n_updates % cfg.policy_delay == 0, delayed, lambda s: s, state)
            metrics = {"critic_loss": critic_loss, "actor_loss": state.last_actor_loss, "q_mean": q.mean()}
            return state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())

    class SBXStyleTD3(TD3):
        agent_cls = SBXStyleTD3Agent

    return SBXStyleTD3


def _finals(path: str) -> tuple[list[float], list[float], str]:
    with open(path) as f:
        payload = json.load(f)
    runs = sorted((r for r in payload["runs"] if r.get("status") == "ok"), key=lambda r: r["seed"])
    final = [r["final_return"] for r in runs]
    last5 = [float(np.mean([e[2] for e in r["evals"][-5:]])) for r in runs]
    libs = sorted({r["lib"] for r in runs})
    return final, last5, f"{path} ({', '.join(libs)}, {len(runs)} seeds)"


def report(paths: list[str]) -> str:
    from scipy.stats import mannwhitneyu

    rows = [_finals(p) for p in paths]
    out = ["| file | final return mean ± std | per seed | mean of the last five evaluations | per seed |",
           "|---|---|---|---|---|"]
    for final, last5, name in rows:
        out.append(f"| {name} | {np.mean(final):.0f} ± {np.std(final, ddof=1):.0f} | "
                   f"{' '.join(f'{x:.0f}' for x in final)} | {np.mean(last5):.0f} ± {np.std(last5, ddof=1):.0f} | "
                   f"{' '.join(f'{x:.0f}' for x in last5)} |")
    out.append("")
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            p_final = mannwhitneyu(rows[i][0], rows[j][0], method="exact").pvalue
            p_last5 = mannwhitneyu(rows[i][1], rows[j][1], method="exact").pvalue
            out.append(f"{paths[i]} vs {paths[j]}: Mann–Whitney p = {p_final:.3f} (final), {p_last5:.3f} (last five)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.td3_sbx_variant", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", choices=ENVS, default="Hopper-v5")
    p.add_argument("--seeds", type=int, default=3, help="seeds FIRST..FIRST+N-1 (default 3)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--out", help="JSON file of the runs (bench_mujoco's layout), rewritten after each seed; "
                                 "finished seeds in it are kept")
    p.add_argument("--report", nargs="+", metavar="FILE", help="run nothing: compare these JSON files")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cfg = MujocoConfig()
    if args.report:
        print(report(args.report))
        return 0
    if args.worker is not None:
        result = run_one("polyak", "td3", args.env, args.worker, args.steps, args.eval_every, args.eval_episodes, cfg,
                         polyak_cls=variant_class())
        print(RESULT_MARKER + json.dumps({**result, "lib": LIB}), flush=True)
        return 0
    runs: list[dict[str, Any]] = []
    if args.out and os.path.exists(args.out):
        with open(args.out) as f:
            runs = [r for r in json.load(f)["runs"] if r.get("status") == "ok"]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if any(r["seed"] == seed for r in runs):
            continue
        result = run_worker([sys.executable, "-m", "benchmarks.td3_sbx_variant", "--worker", str(seed),
                             "--env", args.env, "--steps", str(args.steps), "--eval-every", str(args.eval_every),
                             "--eval-episodes", str(args.eval_episodes)])
        result.update(lib=LIB, algo="td3", env=args.env, seed=seed)
        runs.append(result)
        state = (f"{result['steps_per_s']:.0f} steps/s, return {result['final_return']:.0f}"
                 if result.get("status") == "ok" else result.get("error", "")[-300:])
        print(f"[{datetime.datetime.now():%H:%M:%S}] {args.env} {LIB} seed {seed}: {state}", file=sys.stderr,
              flush=True)
        if args.out:
            payload = {"date": datetime.datetime.now().isoformat(), "machine": machine_info(),
                       "versions": library_versions(VERSION_PACKAGES), "config": dataclasses.asdict(cfg),
                       "args": vars(args), "runs": runs}
            with open(f"{args.out}.tmp", "w") as f:
                json.dump(payload, f, indent=1)
            os.replace(f"{args.out}.tmp", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
