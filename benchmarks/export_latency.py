"""Inference latency of an exported policy: onnxruntime and the NumPy reference against `model.predict`.

Run it as ``python -m benchmarks.export_latency [--models sac,td3,ppo,dqn] [--calls 2000] [--batch 1000]
[--threads 1] [RUN_DIR_OR_MODEL ...]``.

What is measured, per model: the wall time of one call with one observation (the control-loop case: median and
99th percentile over --calls calls, after warm-up), and the time per observation of one call with --batch
observations, for
  predict     `model.predict(obs, deterministic=True)` (JAX, jitted; includes its input checks and the rescaling)
  onnxruntime `InferenceSession.run` on the `polyak export --format onnx` graph (CPU provider, --threads threads)
  numpy       `reference_forward` on the `--format npz` arrays (the function written next to the .npz), with one
              BLAS thread unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS say otherwise
Without run folders, fresh models with the default network sizes are built (SAC and TD3 on Pendulum-v1: 256-256
ReLU actors; PPO on Pendulum-v1: 64-64 tanh; DQN on CartPole-v1: 64-64 ReLU): latency does not depend on the
weights' values. Every export is checked against `model.predict` when it is written; the last column is the
largest |onnxruntime - predict| over 1000 observations out to 30 running standard deviations (integer actions: how
many differ).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# one BLAS thread for NumPy, as onnxruntime gets --threads: on a busy machine OpenBLAS's thread pool is ~40x
# slower for these small products (measured: 1000 x 64 @ 64 x 64 in 22 ms instead of 0.5 ms at load 15 on 2 cores)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import polyak  # noqa: E402
from polyak.runs import export  # noqa: E402

FRESH = {"sac": (polyak.SAC, "Pendulum-v1"), "td3": (polyak.TD3, "Pendulum-v1"), "ppo": (polyak.PPO, "Pendulum-v1"),
         "dqn": (polyak.DQN, "CartPole-v1")}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export_latency", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("paths", nargs="*", metavar="RUN_DIR_OR_MODEL", help="trained models (default: fresh ones)")
    parser.add_argument("--models", default="sac,td3,ppo,dqn", help="fresh models to build (default: sac,td3,ppo,dqn)")
    parser.add_argument("--calls", type=int, default=2000, help="single-observation calls per method (default: 2000)")
    parser.add_argument("--batch", type=int, default=1000, help="observations in the batched call (default: 1000)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default: 1)")
    return parser.parse_args(argv)


def per_call_us(fn, obs: np.ndarray, calls: int) -> np.ndarray:
    """Wall time of each of `calls` calls fn(obs[i]) in microseconds, after 50 warm-up calls."""
    for i in range(50):
        fn(obs[i % len(obs)])
    times = np.empty(calls)
    for i in range(calls):
        x = obs[i % len(obs)]
        t0 = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - t0
    return times * 1e6


def batched_us(fn, obs: np.ndarray, repeats: int = 20) -> float:
    """Median wall time of fn(obs) per observation, in microseconds."""
    fn(obs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(obs)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / len(obs) * 1e6


def measure(model, label: str, args, folder: Path) -> list[dict]:
    import onnxruntime as ort

    onnx_path = export.export_model(model, "onnx", folder / f"{label}.onnx")[0]
    npz_path = export.export_model(model, "npz", folder / f"{label}.npz")[0]
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    with np.load(npz_path, allow_pickle=False) as f:
        params = {k: f[k] for k in f.files}
    obs = export.probe_observations(model, max(args.batch, 256), seed=1)
    methods = {
        "predict": (lambda x: model.predict(x, deterministic=True)[0]),
        "onnxruntime": (lambda x: session.run(None, {"observation": x.reshape(-1, x.shape[-1])})[0]),
        "numpy": (lambda x: export.reference_forward(params, x)),
    }
    # accuracy: onnxruntime against predict on 1000 observations out to 30 running std (beyond the clip)
    wide = export.probe_observations(model, 1000, seed=2)
    got, expected = methods["onnxruntime"](wide), methods["predict"](wide)
    error = (f"{int((got != expected).sum())} of 1000 differ" if got.dtype == np.int64
             else f"{float(np.abs(got.astype(np.float64) - expected).max()):.1e}")
    rows = []
    for name, fn in methods.items():
        single = per_call_us(fn, obs, args.calls)
        rows.append({"model": label, "method": name, "median_us": float(np.median(single)),
                     "p99_us": float(np.percentile(single, 99)), "batched_us": batched_us(fn, obs[:args.batch]),
                     "error": error if name == "onnxruntime" else ""})
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.paths:
        models = [(Path(p).name, polyak.load(export.model_file(p))) for p in args.paths]
    else:
        models = [(name, FRESH[name][0]("MlpPolicy", FRESH[name][1], seed=0)) for name in args.models.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in models:
            rows += measure(model, label, args, Path(tmp))
    print(f"| model | method | 1 obs: median µs | 1 obs: p99 µs | batch of {args.batch}: µs per obs "
          "| max abs. difference to predict |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['method']} | {r['median_us']:.1f} | {r['p99_us']:.1f} | {r['batched_us']:.3f} "
              f"| {r['error']} |")


if __name__ == "__main__":
    main()
