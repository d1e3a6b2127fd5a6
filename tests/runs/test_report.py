"""`polyak report`: multi-seed statistics (IQM, stratified bootstrap CIs) checked by hand and against rliable."""

import json
import subprocess
import sys

import numpy as np
import pytest

from polyak.cli import main
from polyak.io.logger import RunLogger
from polyak.runs.report import (
    find_run_dirs,
    iqm,
    load_run,
    mean,
    mean_curve,
    median,
    median_of_task_means,
    std,
    stratified_bootstrap_ci,
    summarize,
)

# -- statistics by hand ---------------------------------------------------------------------


def test_iqm_of_one_to_eight_is_the_mean_of_the_middle_four():
    x = np.arange(1.0, 9.0)
    assert iqm(x) == pytest.approx(np.mean([3, 4, 5, 6])) == 4.5
    assert iqm(np.random.default_rng(0).permutation(x)) == 4.5  # order does not matter
    assert iqm(x.reshape(4, 2)) == 4.5  # a (runs, tasks) matrix is flattened


@pytest.mark.parametrize("values, expected", [
    ([5.0], 5.0),                                  # n=1: nothing trimmed
    ([1.0, 2.0, 100.0], 103.0 / 3),                # n=3: int(0.75) = 0, IQM = mean
    ([1.0, 2.0, 3.0, 100.0], 2.5),                 # n=4: one from each end
    ([1.0, 2.0, 3.0, 4.0, 100.0], 3.0),            # n=5: int(1.25) = 1 -> middle 3
    ([1.0, 2.0, 3.0, 4.0, 5.0, 100.0], 3.5),       # n=6: int(1.5) = 1 -> middle 4
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0], 4.0),  # n=7: int(1.75) = 1 -> middle 5
    (list(range(1, 11)), 5.5),                     # n=10: int(2.5) = 2 -> 3..8
])
def test_iqm_trimming_follows_scipy_trim_mean(values, expected):
    """scipy.stats.trim_mean(x, 0.25) drops int(0.25 n) values from each end (rounding down)."""
    assert iqm(values) == pytest.approx(expected, rel=1e-15)


def test_mean_std_median():
    x = np.array([4.0, 1.0, 3.0, 2.0])
    assert mean(x) == 2.5 and median(x) == 2.5
    assert std(x) == pytest.approx(np.sqrt(5.0 / 3.0))  # sample std, ddof=1
    assert np.isnan(std([7.0]))
    m = np.array([[1.0, 10.0, 0.0], [3.0, 30.0, 0.0], [5.0, 50.0, 300.0]])  # task means 3, 30, 100
    assert mean(m) == pytest.approx(133.0 / 3)
    assert median_of_task_means(m) == 30.0  # rliable's aggregate_median
    assert median(m) == 5.0  # median of all 9 scores


def test_ci_contains_the_point_estimate_and_is_reproducible():
    x = np.random.default_rng(1).normal(size=12)
    for stat in (iqm, mean, median):
        low, high = stratified_bootstrap_ci(x, stat, reps=5000, rng=3)
        assert low <= float(stat(x)) <= high and low < high
    a = stratified_bootstrap_ci(x, iqm, reps=2000, rng=np.random.default_rng(5))
    b = stratified_bootstrap_ci(x, iqm, reps=2000, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    narrow = stratified_bootstrap_ci(x, mean, reps=5000, confidence=0.5, rng=3)
    wide = stratified_bootstrap_ci(x, mean, reps=5000, confidence=0.99, rng=3)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    low, high = stratified_bootstrap_ci(x, mean, reps=5000, method="basic", rng=3)
    assert low < mean(x) < high


def test_stratified_resampling_never_mixes_tasks():
    constant_columns = np.tile([1.0, 10.0, 100.0], (5, 1))  # every task has a constant score
    ci = stratified_bootstrap_ci(constant_columns, [mean, iqm, median, median_of_task_means], reps=1000, rng=0)
    np.testing.assert_allclose(ci[:, 0], ci[:, 1])
    # 15 scores 1,1,1,1,1,10,...,100: IQM drops int(3.75) = 3 from each end -> (2 + 50 + 200) / 9 = 28
    np.testing.assert_allclose(ci[:, 0], [37.0, 28.0, 10.0, 10.0])
    # task 0 lives in [0, 1], task 1 in [100, 101]: task 0's mean over every resample stays in [0, 1]
    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(0, 1, 6), rng.uniform(100, 101, 6)], axis=1)
    low, high = stratified_bootstrap_ci(x, lambda s: s[..., 0].mean(axis=-1), reps=2000, confidence=0.9999, rng=0)
    assert x[:, 0].min() <= low <= high <= x[:, 0].max()


def test_one_run_gives_a_degenerate_interval_and_bad_input_is_refused():
    np.testing.assert_array_equal(stratified_bootstrap_ci([3.5], iqm, reps=10), [3.5, 3.5])
    with pytest.raises(ValueError, match="NaN"):
        stratified_bootstrap_ci([1.0, np.nan], iqm)
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci([1.0, 2.0], iqm, confidence=95)
    with pytest.raises(ValueError, match="non-empty"):
        iqm([])


# -- against rliable ------------------------------------------------------------------------
# Expected values computed with rliable 1.2.0 itself (arch 7.2.0, numpy 2.4.6, scipy 1.17.1,
# pandas 2.3.3 because arch 7.2.0 fails to import with pandas 3) in a separate venv, never a
# dependency of polyak:
#   python3 -m venv /tmp/rliable-venv && /tmp/rliable-venv/bin/pip install rliable "pandas<3"
#   /tmp/rliable-venv/bin/python rliable_reference.py    # the script is:
#       import numpy as np
#       from rliable import library as rly, metrics
#       agg = lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_median(x),
#                                 metrics.aggregate_mean(x)])
#       for name, scores in (("A", RLIABLE_A), ("B", RLIABLE_B[:, None])):
#           np.random.seed(7)  # StratifiedBootstrap draws with the global np.random.choice
#           point, ci = rly.get_interval_estimates({name: scores}, agg)  # percentile, reps=50000, 95%
#           print(point[name].tolist(), ci[name].tolist())
# Point estimates must match to 1e-12. rliable ignores its random_state argument for the
# resampling (it calls np.random.choice), so with rng=np.random.RandomState(7) we draw the very
# same indices: the CIs match to 1e-12 as well (they agree to the last digit or one ulp). With
# another generator they agree within bootstrap noise.
RLIABLE_A = np.array([[-48.61, -23.447, -407.537], [-136.232, -149.57, -964.486], [-149.575, -205.995, -698.733],
                      [-55.61, -28.044, -91.764], [-183.008, -291.854, -28.318]])  # 5 runs x 3 tasks
RLIABLE_B = np.array([-286.841, -356.711, -311.591, -283.72, -355.327, -236.448, -284.322, -302.403, -412.476,
                      -337.056])  # 10 runs x 1 task
RLIABLE = {  # name: (scores, point (iqm, median, mean), CI rows (low; high) x (iqm, median, mean))
    "A": (RLIABLE_A, [-145.80200000000002, -139.78199999999998, -230.8522],
          [[-258.0181083333334, -229.05360000000002, -341.55155833333333],
           [-78.53233333333333, -89.1274, -125.46896999999997]]),
    "B": (RLIABLE_B, [-312.92333333333335, -316.68950000000007, -316.68950000000007],
          [[-348.5056208333333, -346.79560000000004, -346.79560000000004],
           [-284.961, -288.3588175, -288.3588175]]),
}
RLIABLE_AGGREGATES = [iqm, median_of_task_means, mean]  # aggregate_iqm, aggregate_median, aggregate_mean


@pytest.mark.parametrize("name", sorted(RLIABLE))
def test_point_estimates_match_rliable(name):
    scores, point, _ = RLIABLE[name]
    np.testing.assert_allclose([float(f(scores)) for f in RLIABLE_AGGREGATES], point, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(RLIABLE))
def test_bootstrap_ci_matches_rliable_with_its_random_stream(name):
    scores, _, ci = RLIABLE[name]
    ours = stratified_bootstrap_ci(scores, RLIABLE_AGGREGATES, rng=np.random.RandomState(7))  # reps=50000
    np.testing.assert_allclose(ours.T, ci, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(RLIABLE))
def test_bootstrap_ci_matches_rliable_within_bootstrap_noise_with_another_generator(name):
    scores, _, ci = RLIABLE[name]
    ours = stratified_bootstrap_ci(scores, RLIABLE_AGGREGATES, rng=np.random.default_rng(123))
    width = np.subtract(ci[1], ci[0])
    assert np.all(np.abs(ours.T - np.array(ci)) <= 0.02 * width)  # within 2% of the interval's width


# -- run folders and the command ------------------------------------------------------------
FINAL = {"sac": [-150.0, -170.0, -140.0], "td3": [-300.0, -160.0, -200.0]}


def make_run(run_dir, algo, env, seed, final_return, episode_returns):
    """A run folder as `polyak train` writes it: config.json and eval.json with the keys cmd_train writes
    (polyak has no writer function for them), episodes.csv and metrics.csv through polyak's RunLogger."""
    run_dir.mkdir(parents=True)
    config = {"algorithm": algo, "env": env, "steps": 200 * len(episode_returns), "seed": seed,
              "library_version": "0.1.0", "command": "fake", "overrides": {}, "hyperparameters": {},
              "action_noise": None}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    logger = RunLogger(run_dir, tensorboard=False)
    logger.start(len(episode_returns) * 200)
    for i, ret in enumerate(episode_returns):
        logger.episode(200 * (i + 1), float(ret), 200)
        logger.metrics(200 * (i + 1), {"critic_loss": 0.1})
    logger.close()
    result = {"eval_return_mean": final_return, "eval_return_std": 0.0, "eval_returns": [final_return] * 2,
              "eval_lengths": [200, 200], "train_seconds": 1.0, "steps_per_second": 100.0,
              "steps": 200 * len(episode_returns)}
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
    return run_dir


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    for algo, finals in FINAL.items():
        for seed, final in enumerate(finals):
            n = 15 + 3 * seed  # different lengths: the curves need a common grid
            episodes = np.linspace(-1500, final, n) + 20 * np.sin(np.arange(n) + seed)
            make_run(root / f"{algo}-Pendulum-v1-s{seed}", algo, "Pendulum-v1", seed, final, episodes)
    return root


def test_find_and_load_run_folders(runs_root):
    dirs = find_run_dirs([runs_root, runs_root / "sac-Pendulum-v1-s0"])  # a parent, and a run given twice
    assert len(dirs) == 6
    run = load_run(runs_root / "td3-Pendulum-v1-s1")
    assert (run.algorithm, run.env, run.seed, run.score) == ("td3", "Pendulum-v1", 1, -160.0)
    assert run.curve_steps[0] == 200 and len(run.curve_steps) == 18
    assert load_run(runs_root / "td3-Pendulum-v1-s1", metric="train-last").score < -160.0
    grid, _mu, sd, n = mean_curve([load_run(d) for d in dirs if "sac" in d.name])
    assert n == 3 and grid[0] == 200 and grid[-1] == 200 * 15 and np.all(sd >= 0)
    config_path = runs_root / "sac-Pendulum-v1-s0" / "config.json"  # other env keywords: another environment
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "env_kwargs": {"g": 9.81}}))
    assert load_run(config_path.parent).env == 'Pendulum-v1 {"g": 9.81}'


def test_report_end_to_end(runs_root, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(runs_root), "--out", str(out), "--reps", "2000"]) == 0
    assert "SAC" in capsys.readouterr().out
    data = json.loads((out / "report.json").read_text())
    assert data["metric"] == "final" and data["std_ddof"] == 1
    env = data["environments"]["Pendulum-v1"]
    assert env["plot"] == "learning_curve_Pendulum-v1.png"
    for algo, finals in FINAL.items():
        s = env["algorithms"][algo]
        assert s["n"] == 3 and s["seeds"] == [0, 1, 2] and s["values"] == finals
        assert s["mean"] == pytest.approx(np.mean(finals)) and s["std"] == pytest.approx(np.std(finals, ddof=1))
        assert s["median"] == np.median(finals) and s["iqm"] == pytest.approx(np.mean(finals))  # n=3: no trimming
        assert s["iqm_ci"] == pytest.approx(summarize(finals, reps=2000, rng=0)["iqm_ci"])
        assert s["iqm_ci"][0] <= s["iqm"] <= s["iqm_ci"][1]
        assert s["iqm_ci"][0] >= min(finals) and s["iqm_ci"][1] <= max(finals)
    md = (out / "report.md").read_text()
    assert "## Pendulum-v1" in md and "ddof=1" in md and "![learning curves on Pendulum-v1]" in md
    assert "| SAC | 3 | -153.3 ± 15.3 | -150.0 | -153.3 [" in md
    assert "| TD3 | 3 | -220.0 ± 72.1 | -200.0 | -220.0 [" in md
    assert "0: -150.0, 1: -170.0, 2: -140.0" in md
    png = out / "learning_curve_Pendulum-v1.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_errors_name_the_folder_and_what_is_missing(runs_root, tmp_path, capsys):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    with pytest.raises(SystemExit, match="not-a-run is not a run folder: it has no config.json"):
        main(["report", str(empty), "--out", str(tmp_path / "r")])
    n_runs = len(list(runs_root.iterdir()))
    (runs_root / "sac-Pendulum-v1-s2" / "eval.json").unlink()  # an unfinished (failed or killed) run
    assert main(["report", str(runs_root), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "skipped: " in out and "sac-Pendulum-v1-s2: eval.json is missing" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [s["path"].endswith("sac-Pendulum-v1-s2") for s in report["skipped"]] == [True]
    assert sum(a["n"] for e in report["environments"].values() for a in e["algorithms"].values()) == n_runs - 1
    assert "sac-Pendulum-v1-s2: eval.json is missing" in (tmp_path / "r" / "report.md").read_text()
    with pytest.raises(SystemExit, match="no finished run to report on; skipped: .*eval.json is missing"):
        main(["report", str(runs_root / "sac-Pendulum-v1-s2"), "--out", str(tmp_path / "r2")])
    with pytest.raises(SystemExit, match="no such file"):
        main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")])


def test_report_help():
    out = subprocess.run([sys.executable, "-m", "polyak", "report", "--help"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and "--metric" in out.stdout and "--out" in out.stdout
