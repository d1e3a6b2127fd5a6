"""benchmarks.update_flops: XLA's count of one update, and its arguments checked."""

import pytest

import benchmarks.update_flops as uf


def test_the_count_holds_at_least_the_critic_steps_matmuls_and_the_timed_program_runs():
    obs, act, batch, h = 3, 1, 8, 256  # TD3's defaults: two critics [256, 256]
    flops, rate = uf.update_rate("td3", obs, act, batch, calls=2)  # the program update_flops counts, also run
    assert rate > 0
    # two critics' forward pass on (s, a) and the target critics' on (s', a'): 2 x 2 x 2 B (in h + h h + h) FLOPs,
    # before any backward pass or actor step
    forward = 2 * batch * ((obs + act) * h + h * h + h)
    assert 4 * forward < flops < 40 * forward


def test_table_and_bad_algos_refused(monkeypatch, capsys):
    monkeypatch.setattr(uf, "update_flops", lambda algo, obs, act, batch: 1e6 * (obs + act + batch))
    assert uf.main(["--algos", "td3_bc", "--obs-dim", "3", "--act-dim", "1", "--batch-size", "8"]) == 0
    assert "| td3_bc | 12.0 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        uf.main(["--algos", "td3,nope"])


def test_timing_adds_the_rate_and_the_flop_rate(monkeypatch, capsys):
    monkeypatch.setattr(uf, "update_rate", lambda algo, obs, act, batch, calls: (2e9, 1.5 * calls))
    assert uf.main(["--algos", "cql", "--time", "4"]) == 0
    assert "| cql | 2000.0 | 6.00 | 12.0 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        uf.main(["--algos", "cql", "--time", "-1"])


def test_the_matmul_rate_counts_2mnk_per_product(monkeypatch):
    clock = iter([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])  # every timed run takes 0.5 s
    monkeypatch.setattr("time.perf_counter", lambda: next(clock))
    assert uf.matmul_rate(8, width=4, chain=10) == pytest.approx(10 * 2 * 8 * 4 * 4 / 0.5 / 1e9)
