"""Multi-seed statistics and the `polyak report` command.

Statistics (pure NumPy)
-----------------------
Scores are a matrix of shape ``(runs, tasks)``, as in rliable (Agarwal et al., 2021, "Deep RL
at the edge of the statistical precipice"); a 1-D array is one task, i.e. one score per seed.

* :func:`mean` – mean of the per-task means (= mean of all scores for a full matrix);
* :func:`std` – *sample* standard deviation (ddof=1) of all scores;
* :func:`median` – median of all scores (for one task: the median over seeds);
* :func:`median_of_task_means` – median of the per-task means (rliable's ``aggregate_median``;
  for one task it equals the mean, which is why the report uses :func:`median`);
* :func:`iqm` – interquartile mean: sort all ``runs * tasks`` scores, drop ``int(0.25 * n)``
  from each end, average the rest (the convention of ``scipy.stats.trim_mean(x, 0.25)``, which
  rliable's ``aggregate_iqm`` calls on the flattened matrix). For n < 4 nothing is dropped;
* :func:`stratified_bootstrap_ci` – the stratified bootstrap of rliable: each resample draws,
  for every task separately, ``runs`` runs with replacement from that task's column, so tasks
  are never mixed; the statistic is recomputed on every resample and the interval is read off
  the percentiles of those values (``method="percentile"``, the default, or ``"basic"``).
  ``reps`` defaults to rliable's 50 000. Given ``rng=np.random.RandomState(s)`` it draws the same
  indices in the same order as rliable does after ``np.random.seed(s)``, so it reproduces
  rliable's intervals.

Statistic functions take an array whose last two axes are ``(runs, tasks)`` and reduce them, so
the bootstrap evaluates all resamples at once on a ``(reps, runs, tasks)`` batch.

Report
------
``polyak report RUN_DIR... [--out report] [--metric final]`` reads run folders written by
``polyak train`` (config.json, eval.json, episodes.csv / metrics.csv), groups them by
(algorithm, environment; runs of one env id with different ``env_kwargs`` are different
environments, and runs with different ``variant`` labels in config.json, as `polyak sweep` writes, are
different algorithms) and writes ``report.md``, ``report.json`` and one learning-curve PNG per
environment (mean over seeds with a ±1 std band, on a common step grid). Runs whose eval.json has
``q_bias`` (the critic's Q(s_t, a_t) minus the return obtained, `polyak.evaluation.evaluate_q_bias`) add
a critic-bias table per environment and ``q_bias_<env>.png`` (one point per seed, mean ± std per algorithm).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]
RNGLike = int | np.random.Generator | np.random.RandomState | None

DEFAULT_REPS = 50_000  # rliable.library.get_interval_estimates(reps=50000)
DEFAULT_CONFIDENCE = 0.95
CURVE_POINTS = 200


# -- statistics -----------------------------------------------------------------------------
def _matrix(scores: Any) -> np.ndarray:
    """Scores as float array with at least 2 axes: a 1-D array becomes (runs, 1 task)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim < 2 or x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"scores must be a non-empty (runs,) vector or (runs, tasks) matrix, got shape {x.shape}")
    return x


def _flat(scores: Any) -> np.ndarray:
    """All runs x tasks scores along the last axis (leading batch axes are kept)."""
    x = _matrix(scores)
    return x.reshape(*x.shape[:-2], -1)


def mean(scores: Any) -> np.ndarray:
    """Mean of the per-task means (rliable's aggregate_mean)."""
    return _matrix(scores).mean(axis=-2).mean(axis=-1)


def std(scores: Any) -> np.ndarray:
    """Sample standard deviation (ddof=1) of all scores; NaN for a single score."""
    x = _flat(scores)
    if x.shape[-1] < 2:
        return np.full(x.shape[:-1], np.nan)
    return x.std(axis=-1, ddof=1)


def median(scores: Any) -> np.ndarray:
    """Median of all runs x tasks scores (for one task: the median over seeds)."""
    return np.median(_flat(scores), axis=-1)


def median_of_task_means(scores: Any) -> np.ndarray:
    """Median over tasks of the per-task mean score (rliable's aggregate_median)."""
    return np.median(_matrix(scores).mean(axis=-2), axis=-1)


def iqm(scores: Any) -> np.ndarray:
    """Interquartile mean: the mean of all scores after dropping int(n/4) from each end.

    Same trimming as scipy.stats.trim_mean(x.ravel(), 0.25): n = 8 keeps the middle 4, n = 10
    drops 2 from each end and keeps 6, n = 5 keeps 3, n <= 3 keeps everything.
    """
    x = _flat(scores)
    n = x.shape[-1]
    cut = int(0.25 * n)
    return np.sort(x, axis=-1)[..., cut:n - cut].mean(axis=-1)


STATISTICS: dict[str, Statistic] = {"mean": mean, "median": median, "iqm": iqm,
                                    "median_of_task_means": median_of_task_means}


def _rng(rng: RNGLike) -> np.random.Generator | np.random.RandomState:
    if isinstance(rng, np.random.Generator | np.random.RandomState):
        return rng
    return np.random.default_rng(rng)


def stratified_bootstrap_ci(scores: Any, statistic: Statistic | Sequence[Statistic] = iqm, *,
                            reps: int = DEFAULT_REPS, confidence: float = DEFAULT_CONFIDENCE,
                            method: str = "percentile", rng: RNGLike = None) -> np.ndarray:
    """Stratified-bootstrap confidence interval(s) of `statistic` over runs.

    scores: (runs,) or (runs, tasks). Every resample draws, independently for each task (stratum),
    `runs` run indices with replacement from that task's column. `statistic` is one function or a
    sequence of functions (all evaluated on the same resamples), each mapping a (..., runs, tasks)
    array to (...). rng: seed, np.random.Generator, or np.random.RandomState (the latter
    reproduces rliable, which draws with the legacy global np.random).

    Returns [low, high] for one statistic, or a (k, 2) array for a sequence of k statistics.
    """
    x = _matrix(scores)
    if x.ndim != 2:
        raise ValueError(f"scores must be (runs,) or (runs, tasks), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores contain NaN or inf; a confidence interval needs finite scores")
    if int(reps) < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if method not in ("percentile", "basic"):
        raise ValueError(f"method must be 'percentile' or 'basic', got {method!r}")
    single = callable(statistic)
    funcs = [statistic] if single else list(statistic)
    gen = _rng(rng)
    runs, tasks = x.shape
    columns = np.arange(tasks)
    results = np.empty((int(reps), len(funcs)))
    chunk = max(1, (1 << 22) // (runs * tasks))  # at most ~4M resampled scores in memory at once
    for start in range(0, int(reps), chunk):
        k = min(chunk, int(reps) - start)
        # same draw order as rliable: per resample, a (runs, tasks) block of run indices, C order
        rows = gen.choice(runs, size=(k, runs, tasks), replace=True)
        sample = x[rows, columns]  # sample[r, i, j] = x[rows[r, i, j], j]: task j only sees task j
        for j, func in enumerate(funcs):
            results[start:start + k, j] = func(sample)
    alpha = (1.0 - confidence) / 2
    low, high = np.percentile(results, [100 * alpha, 100 * (1 - alpha)], axis=0)
    if method == "basic":
        base = np.array([float(func(x)) for func in funcs])
        low, high = 2 * base - high, 2 * base - low
    out = np.stack([low, high], axis=-1)
    return out[0] if single else out


def summarize(scores: Any, *, reps: int = DEFAULT_REPS, confidence: float = DEFAULT_CONFIDENCE,
              method: str = "percentile", rng: RNGLike = 0) -> dict[str, Any]:
    """Mean, sample std (ddof=1), median, IQM and bootstrap CIs of the mean and the IQM."""
    x = _matrix(scores)
    (mean_lo, mean_hi), (iqm_lo, iqm_hi) = stratified_bootstrap_ci(
        x, [mean, iqm], reps=reps, confidence=confidence, method=method, rng=rng)
    return {"n": int(x.size), "mean": float(mean(x)), "std": float(std(x)), "median": float(median(x)),
            "iqm": float(iqm(x)), "iqm_ci": [float(iqm_lo), float(iqm_hi)],
            "mean_ci": [float(mean_lo), float(mean_hi)]}


# -- run folders ----------------------------------------------------------------------------
class RunFolderError(ValueError):
    """A folder given to `polyak report` is not a usable run folder."""


METRICS = {
    "final": "final deterministic evaluation return (eval.json `eval_return_mean`: mean over the run's "
             "evaluation episodes after training)",
    "train-last": "mean return of the last 10 training episodes (episodes.csv; exploration policy)",
    "train-mean": "mean return of all training episodes (episodes.csv; the area under the learning curve "
                  "per episode)",
}


@dataclass
class Run:
    path: Path
    algorithm: str
    env: str
    seed: int | None
    score: float
    curve_steps: np.ndarray | None = field(default=None, repr=False)
    curve_returns: np.ndarray | None = field(default=None, repr=False)
    q_bias: dict[str, Any] | None = field(default=None, repr=False)  # eval.json's critic bias, if recorded


def find_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders among `paths`: a folder with config.json, or the subfolders (one level) that have one."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise RunFolderError(f"{p}: no such file or folder")
        if not p.is_dir():
            raise RunFolderError(f"{p} is not a folder: pass a run folder written by `polyak train` "
                                 "or a folder that contains run folders")
        if (p / "config.json").is_file():
            found.append(p)
            continue
        children = sorted(c for c in p.iterdir() if c.is_dir() and (c / "config.json").is_file())
        if not children:
            raise RunFolderError(f"{p} is not a run folder: it has no config.json, and none of its "
                                 "subfolders has one (expected folders written by `polyak train`)")
        found.extend(children)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _episodes(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    path = run_dir / "episodes.csv"
    if not path.is_file():
        return None
    rows = _read_csv(path)
    if not rows:
        return None
    try:
        return (np.array([float(r["step"]) for r in rows]), np.array([float(r["episode_return"]) for r in rows]))
    except (KeyError, TypeError, ValueError) as e:
        raise RunFolderError(f"{path}: expected columns step, episode_return with numbers ({e})") from None


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last `window` values (fewer at the start)."""
    c = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _curve(run_dir: Path, episodes, smooth: int) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Learning curve: smoothed training episode returns, or metrics.csv's recent_return as a fallback."""
    if episodes is not None:
        steps, returns = episodes
        return steps, _moving_average(returns, max(1, smooth))
    path = run_dir / "metrics.csv"
    if path.is_file():
        rows = [r for r in _read_csv(path) if r.get("recent_return") not in (None, "", "nan")]
        if rows:
            return np.array([float(r["step"]) for r in rows]), np.array([float(r["recent_return"]) for r in rows])
    return None, None


def load_run(run_dir: str | Path, metric: str = "final", smooth: int = 10) -> Run:
    """Read one run folder: algorithm, env and seed from config.json, the score `metric`, the learning curve."""
    run_dir = Path(run_dir)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise RunFolderError(f"{run_dir} is not a run folder: config.json is missing")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise RunFolderError(f"{cfg_path}: not valid JSON ({e})") from None
    missing = [k for k in ("algorithm", "env") if k not in config]
    if missing:
        raise RunFolderError(f"{cfg_path}: missing {', '.join(missing)} (expected the config.json of `polyak train`)")
    episodes = _episodes(run_dir)
    if metric == "final":
        eval_path = run_dir / "eval.json"
        if not eval_path.is_file():
            raise RunFolderError(f"{run_dir}: eval.json is missing, so the run has no final evaluation (did "
                                 "training stop early?). Finish or remove the run, or use --metric train-last")
        try:
            result = json.loads(eval_path.read_text())
        except json.JSONDecodeError as e:
            raise RunFolderError(f"{eval_path}: not valid JSON ({e})") from None
        if "eval_return_mean" in result:
            score = float(result["eval_return_mean"])
        elif result.get("eval_returns"):
            score = float(np.mean(result["eval_returns"]))
        else:
            raise RunFolderError(f"{eval_path}: has neither eval_return_mean nor eval_returns")
    else:
        if episodes is None:
            raise RunFolderError(f"{run_dir}: episodes.csv is missing or empty, needed for --metric {metric}")
        returns = episodes[1]
        score = float(np.mean(returns[-10:] if metric == "train-last" else returns))
    if not math.isfinite(score):
        raise RunFolderError(f"{run_dir}: the {metric} score is {score}")
    steps, curve = _curve(run_dir, episodes, smooth)
    seed = config.get("seed")
    env = str(config["env"])
    if config.get("env_kwargs"):  # the same id with other keywords is another environment
        env += " " + json.dumps(config["env_kwargs"], sort_keys=True)
    algorithm = str(config["algorithm"])
    # (polyak/experiments.py) runs of one sweep grid point carry a "variant" label (`polyak train --variant`,
    # e.g. "learning_rate=0.001"): a hyperparameter variant is its own group, never merged with the others.
    if config.get("variant"):
        algorithm += f" [{config['variant']}]"
    return Run(run_dir, algorithm, env, None if seed is None else int(seed), score, steps, curve,
               q_bias=_read_q_bias(run_dir))


def mean_curve(runs: Sequence[Run], points: int = CURVE_POINTS):
    """(grid, mean, std, n) of the runs' curves interpolated onto a common step grid.

    The grid spans only the steps every run covers (no extrapolation); std is the sample std (ddof=1),
    NaN for one run. Returns None when fewer than one run has a curve or the runs do not overlap.
    """
    curves = [(r.curve_steps, r.curve_returns) for r in runs if r.curve_steps is not None and len(r.curve_steps)]
    if not curves:
        return None
    lo = max(float(s[0]) for s, _ in curves)
    hi = min(float(s[-1]) for s, _ in curves)
    if hi < lo:
        return None
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    ys = np.stack([np.interp(grid, s, v) for s, v in curves])
    spread = ys.std(axis=0, ddof=1) if len(curves) > 1 else np.full(len(grid), np.nan)
    return grid, ys.mean(axis=0), spread, len(curves)


# -- the report -----------------------------------------------------------------------------
def _decimals(values: Sequence[float]) -> int:
    """One decimal for returns in the hundreds or more, two for units, three below."""
    scale = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return 1 if scale >= 100 else 2 if scale >= 1 else 3


def _fmt(v: float | None, decimals: int) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{decimals}f}"


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


def _file_name(env: str) -> str:
    return "learning_curve_" + re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("_") + ".png"


# -- critic bias (eval.json's q_bias, written by `polyak train`; polyak.evaluation.evaluate_q_bias) --------
Q_BIAS_KEYS = {"mean": "q_bias", "t0": "q_bias_t0", "normalized": "q_bias_normalized"}


def _read_q_bias(run_dir: Path) -> dict[str, Any] | None:
    """{"mean", "t0", "normalized"[, "soft"]} from eval.json, or None when the run recorded no critic bias."""
    try:
        result = json.loads((run_dir / "eval.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(result.get("q_bias"), int | float):
        return None
    out = {k: float(result.get(key, math.nan)) for k, key in Q_BIAS_KEYS.items()}
    soft = (result.get("q_bias_details") or {}).get("soft")
    if soft:
        out["soft"] = {"mean": float(soft["bias_mean"]), "alpha_entropy": float(soft["alpha_entropy"])}
    return out


def q_bias_summary(groups: dict[str, list[Run]]) -> dict[str, Any]:
    """Per algorithm: per-seed critic biases (Q - G) and their mean ± sample std over seeds."""
    out: dict[str, Any] = {}
    for algo, group in groups.items():
        runs = [r for r in group if r.q_bias is not None]
        if not runs:
            continue
        entry: dict[str, Any] = {"n": len(runs), "seeds": [r.seed for r in runs]}
        for k in Q_BIAS_KEYS:
            values = np.array([r.q_bias[k] for r in runs])
            entry[k] = {"values": [float(v) for v in values], "mean": float(np.mean(values)), "std": float(std(values))}
        if all("soft" in r.q_bias for r in runs):
            for k in ("mean", "alpha_entropy"):
                values = np.array([r.q_bias["soft"][k] for r in runs])
                entry[f"soft_{k}"] = {"values": [float(v) for v in values], "mean": float(np.mean(values)),
                                      "std": float(std(values))}
        out[algo] = entry
    return out


def _q_bias_markdown(env: str, entry: dict[str, Any]) -> list[str]:
    bias = entry.get("q_bias")
    if not bias:
        return []
    d = _decimals([v for s in bias.values() for v in s["mean"]["values"] + s["t0"]["values"]])
    lines = [f"### Critic bias on {env}", "",
             "Q(s_t, a_t) of the critic (min over critics) minus the discounted return G_t obtained from s_t, over the "
             "run's deterministic evaluation episodes, in reward units; positive = overestimation. Time-limit "
             "tails are bootstrapped with the critic's own value and only states with tail weight "
             "gamma^(T-t) <= 0.25 are averaged (polyak.evaluation.evaluate_q_bias). Over seeds: mean ± sample std.", "",
             "| algorithm | seeds | mean bias | bias at t = 0 | normalised mean(Q-G)/mean(abs G) | "
             "per seed (seed: mean / t = 0) |", "|---|---:|---|---|---|---|"]
    notes = []
    for algo, s in bias.items():
        per_seed = ", ".join(f"{'?' if seed is None else seed}: {_fmt(m, d)} / {_fmt(t, d)}"
                             for seed, m, t in zip(s["seeds"], s["mean"]["values"], s["t0"]["values"]))
        lines.append(f"| {algo.upper()} | {s['n']} | {_fmt(s['mean']['mean'], d)} ± {_fmt(s['mean']['std'], d)} | "
                     f"{_fmt(s['t0']['mean'], d)} ± {_fmt(s['t0']['std'], d)} | "
                     f"{_fmt(s['normalized']['mean'], 3)} ± {_fmt(s['normalized']['std'], 3)} | {per_seed} |")
        if "soft_mean" in s:
            notes.append(f"{algo.upper()}'s critic estimates a soft value (reward plus entropy bonus): against the soft "
                         f"return its mean bias is {_fmt(s['soft_mean']['mean'], d)} ± {_fmt(s['soft_mean']['std'], d)}; "
                         f"alpha x entropy per step = {_fmt(s['soft_alpha_entropy']['mean'], 4)} ± "
                         f"{_fmt(s['soft_alpha_entropy']['std'], 4)}.")
    lines.append("")
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    if entry.get("q_bias_plot"):
        lines += [f"![critic bias on {env}]({entry['q_bias_plot']})", ""]
    return lines


def _q_bias_file_name(env: str) -> str:
    return "q_bias_" + re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("_") + ".png"


def plot_q_bias(env: str, bias: dict[str, Any], path: Path) -> Path | None:
    """Two panels (mean bias, bias at t = 0): one point per seed and the mean ± std per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not bias:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 4.0), sharey=False)
    for ax, key, title in zip(axes, ("mean", "t0"), ("mean over states", "at t = 0")):
        for i, (algo, s) in enumerate(bias.items()):
            values = np.array(s[key]["values"])
            offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(i + offsets, values, color=f"C{i % 10}", alpha=0.7, s=30, zorder=3,
                       label="one seed" if i == 0 else None)
            sd = s[key]["std"] if math.isfinite(s[key]["std"]) else 0.0
            ax.errorbar(i + 0.32, s[key]["mean"], yerr=sd, fmt="D", color="black", ms=6, capsize=4, zorder=4,
                        label="mean ± std" if i == 0 else None)
        ax.axhline(0.0, color="gray", lw=1, ls="--")
        ax.set_xticks(range(len(bias)), [a.upper() for a in bias])
        ax.set_xlim(-0.6, len(bias) - 0.3)
        ax.set_title(f"Q - G, {title}")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("critic bias (reward units)\n> 0: overestimation")
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{env}: critic Q(s, a) minus discounted return obtained")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(env: str, groups: dict[str, list[Run]], path: Path, smooth: int = 10) -> Path | None:
    """One axis, per algorithm the mean over seeds and a ±1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = False
    for i, (algo, runs) in enumerate(groups.items()):
        curve = mean_curve(runs)
        if curve is None:
            continue
        grid, mu, sd, n = curve
        color = f"C{i % 10}"
        ax.plot(grid, mu, color=color, lw=2, label=f"{algo.upper()} (n={n} seed{'s' if n != 1 else ''})")
        if n > 1:
            ax.fill_between(grid, mu - sd, mu + sd, color=color, alpha=0.2, lw=0)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"training episode return\n(moving average of {smooth} episodes)")
    ax.set_title(f"{env}: mean over seeds, band ±1 std")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_report(runs: Sequence[Run], *, metric: str = "final", reps: int = DEFAULT_REPS,
                 confidence: float = DEFAULT_CONFIDENCE, method: str = "percentile", seed: int = 0) -> dict[str, Any]:
    """The numbers of report.json: per environment, per algorithm, the statistics over seeds."""
    by_env: dict[str, dict[str, list[Run]]] = {}
    for run in sorted(runs, key=lambda r: (r.env, r.algorithm, -1 if r.seed is None else r.seed, str(r.path))):
        by_env.setdefault(run.env, {}).setdefault(run.algorithm, []).append(run)
    envs: dict[str, Any] = {}
    for env, groups in by_env.items():
        algos: dict[str, Any] = {}
        for algo, group in groups.items():
            scores = np.array([r.score for r in group])
            stats = summarize(scores, reps=reps, confidence=confidence, method=method, rng=seed)
            seeds = [r.seed for r in group]
            duplicates = sorted({s for s in seeds if s is not None and seeds.count(s) > 1})
            curve = mean_curve(group)
            longest = max((float(r.curve_steps[-1]) for r in group if r.curve_steps is not None and len(r.curve_steps)),
                          default=None)
            algos[algo] = {**stats, "seeds": seeds, "values": [float(v) for v in scores],
                           "runs": [str(r.path) for r in group], "duplicate_seeds": duplicates,
                           "curve": None if curve is None else {"runs": curve[3], "from_step": float(curve[0][0]),
                                                                "to_step": float(curve[0][-1]),
                                                                "longest_run_to_step": longest}}
        envs[env] = {"algorithms": algos, "plot": None}
        bias = q_bias_summary(groups)
        if bias:
            envs[env].update(q_bias=bias, q_bias_plot=None)
    return {"metric": metric, "metric_description": METRICS[metric], "std_ddof": 1,
            "iqm_definition": "mean of the scores left after dropping int(0.25 n) from each end "
                              "(scipy.stats.trim_mean(x, 0.25))",
            "confidence": confidence, "bootstrap": {"method": method, "reps": reps, "seed": seed,
                                                    "resampling": "seeds with replacement (stratified by task)"},
            "environments": envs}


def render_markdown(report: dict[str, Any]) -> str:
    pct = f"{100 * report['confidence']:g}%"
    boot = report["bootstrap"]
    lines = ["# polyak report", "",
             f"Score per run: {report['metric_description']}.", "",
             (f"Over seeds: mean ± sample std (ddof=1); median; IQM = interquartile mean, the mean of the middle "
              f"50% of the seeds (int(n/4) dropped from each end, so for n < 4 it equals the mean); "
              f"[{pct} CI] of the IQM from a {boot['method']} bootstrap over seeds "
              f"({boot['reps']} resamples, seed {boot['seed']}). With few seeds the interval is coarse: "
              f"it can only take values computed from the seeds at hand."), ""]
    for env, entry in report["environments"].items():
        lines += [f"## {env}", "",
                  f"| algorithm | seeds | mean ± std | median | IQM [{pct} CI] | per seed (seed: score) |",
                  "|---|---:|---|---:|---|---|"]
        notes = []
        d = _decimals([v for s in entry["algorithms"].values() for v in s["values"]])
        for algo, s in entry["algorithms"].items():
            per_seed = ", ".join(f"{'?' if seed is None else seed}: {_fmt(v, d)}"
                                 for seed, v in zip(s["seeds"], s["values"]))
            lines.append(f"| {algo.upper()} | {s['n']} | {_fmt(s['mean'], d)} ± {_fmt(s['std'], d)} | "
                         f"{_fmt(s['median'], d)} | {_fmt(s['iqm'], d)} [{_fmt(s['iqm_ci'][0], d)}, "
                         f"{_fmt(s['iqm_ci'][1], d)}] | {per_seed} |")
            if s["n"] < 2:
                notes.append(f"{algo.upper()} has a single run: no std, and the CI is just that run's score.")
            if s["duplicate_seeds"]:
                notes.append(f"{algo.upper()}: seed(s) {s['duplicate_seeds']} appear in more than one run folder.")
            c = s["curve"]
            if c is None:
                notes.append(f"{algo.upper()}: no learning curve (no episodes.csv or metrics.csv with returns).")
            elif c["runs"] < s["n"]:
                notes.append(f"{algo.upper()}: learning curve from {c['runs']} of {s['n']} runs (the others logged none).")
            if c is not None and c["longest_run_to_step"] is not None and c["to_step"] < c["longest_run_to_step"]:
                notes.append(f"{algo.upper()}: learning curve shown up to step {c['to_step']:.0f}, where its shortest "
                             f"run ends (the longest reaches {c['longest_run_to_step']:.0f}).")
        lines.append("")
        lines += [f"- {n}" for n in notes] + ([""] if notes else [])
        if entry["plot"]:
            lines += [f"![learning curves on {env}]({entry['plot']})", ""]
        lines += _q_bias_markdown(env, entry)
    return "\n".join(lines)


def write_report(paths: Sequence[str | Path], out: str | Path = "report", *, metric: str = "final",
                 reps: int = DEFAULT_REPS, confidence: float = DEFAULT_CONFIDENCE, method: str = "percentile",
                 seed: int = 0, smooth: int = 10) -> dict[str, Any]:
    """Read the run folders in `paths`, write report.md, report.json and learning-curve PNGs into `out`.

    Folders that are not finished, readable runs (a failed or interrupted run, a broken config.json) are
    skipped and listed in the report's "skipped" entry with the reason; no finished run at all is an error.
    """
    runs, skipped = [], []
    for p in find_run_dirs(paths):
        try:
            runs.append(load_run(p, metric, smooth))
        except RunFolderError as e:
            skipped.append({"path": str(p), "reason": str(e)})
    if not runs:
        raise RunFolderError("no finished run to report on; skipped: "
                             + "; ".join(f"{s['reason']}" for s in skipped))
    report = build_report(runs, metric=metric, reps=reps, confidence=confidence, method=method, seed=seed)
    report["skipped"] = skipped
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for env, entry in report["environments"].items():
        groups: dict[str, list[Run]] = {}
        for r in runs:
            if r.env == env:
                groups.setdefault(r.algorithm, []).append(r)
        groups = {a: groups[a] for a in entry["algorithms"]}
        if plot_curves(env, groups, out / _file_name(env), smooth) is not None:
            entry["plot"] = _file_name(env)
        if entry.get("q_bias") and plot_q_bias(env, entry["q_bias"], out / _q_bias_file_name(env)) is not None:
            entry["q_bias_plot"] = _q_bias_file_name(env)
    (out / "report.json").write_text(json.dumps(_json_safe(report), indent=2))
    markdown = render_markdown(report)
    if skipped:
        markdown += "\n\nSkipped (not finished runs):\n\n" + "\n".join(f"- {s['reason']}" for s in skipped) + "\n"
    (out / "report.md").write_text(markdown)
    return report
