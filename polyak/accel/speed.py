"""Environment speed: vmapped JAX steps per second and the Gymnasium adapter's steps per second.

    python3 -m polyak accel speed --env transverse --num-envs 1 1024 --steps 200 --repeats 5

The vmapped measurement runs `steps` steps of N environments in one jitted `lax.scan` (random
actions drawn inside, ended episodes reset in place as the vector adapter does) and reports
N * steps / wall time, after a compile run. The adapter measurement steps one
`gymnasium.make(ID)` environment (with Gymnasium's default wrappers) with random actions, resetting
when an episode ends. Medians over `repeats`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

import polyak.envs  # noqa: F401  (registers the ids)

ENVS = {"transverse": ("polyak.envs.transverse_tuning", "TransverseTuning", "polyak/TransverseTuning-v0"),
        "orbit": ("polyak.envs.orbit_steering", "OrbitSteering", "polyak/OrbitSteering-v0"),
        "pendulum": ("polyak.envs.pendulum", "Pendulum", "polyak/Pendulum-v1")}


def make_rollout(env, params, num_envs: int, steps: int):
    low = jnp.asarray(env.action_space.low)
    high = jnp.asarray(env.action_space.high)
    reset_many = jax.vmap(env.reset, in_axes=(0, None))
    step_many = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(key):
        key, sub = jax.random.split(key)
        states, _ = reset_many(jax.random.split(sub, num_envs), params)

        def body(carry, _):
            states, key = carry
            key, k_act, k_step, k_reset = jax.random.split(key, 4)
            actions = jax.random.uniform(k_act, (num_envs, *low.shape), minval=low, maxval=high)
            states, obs, reward, terminated, truncated, _ = step_many(
                jax.random.split(k_step, num_envs), states, actions, params)
            done = terminated | truncated
            fresh, _ = reset_many(jax.random.split(k_reset, num_envs), params)
            states = jax.tree.map(
                lambda a, b: jnp.where(done.reshape(done.shape + (1,) * (b.ndim - 1)), a, b), fresh, states)
            return (states, key), reward.sum()

        _, rewards = jax.lax.scan(body, (states, key), None, length=steps)
        return rewards.sum()

    return jax.jit(rollout)


def vmapped_steps_per_second(name: str, num_envs: int, steps: int, repeats: int) -> float:
    import importlib

    module, cls, _ = ENVS[name]
    env = getattr(importlib.import_module(module), cls)()
    rollout = make_rollout(env, env.default_params, num_envs, steps)
    jax.block_until_ready(rollout(jax.random.PRNGKey(0)))  # compile
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(rollout(jax.random.PRNGKey(r + 1)))
        rates.append(num_envs * steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def adapter_steps_per_second(name: str, steps: int, repeats: int) -> float:
    env = gym.make(ENVS[name][2])
    actions = np.random.default_rng(0).uniform(env.action_space.low, env.action_space.high,
                                               (steps, *env.action_space.shape)).astype(np.float32)
    env.reset(seed=0)
    env.step(actions[0])  # compile
    rates = []
    for _ in range(repeats):
        env.reset(seed=1)
        t0 = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def main(args: argparse.Namespace) -> int:
    print(f"| env | setting | env steps/s (median of {args.repeats}) |\n|---|---|---|")
    for n in args.num_envs:
        rate = vmapped_steps_per_second(args.env, n, args.steps, args.repeats)
        print(f"| {args.env} | vmapped, {n} envs, {args.steps} steps in one lax.scan | {rate:,.0f} |", flush=True)
    rate = adapter_steps_per_second(args.env, max(args.steps, 1000), args.repeats)
    print(f"| {args.env} | gymnasium.make, one env, Python loop | {rate:,.0f} |")
    return 0
