"""benchmarks.update_flops: XLA's count of one update, and its arguments checked."""

import pytest

import benchmarks.update_flops as uf


def test_the_count_holds_at_least_the_critic_steps_matmuls():
    obs, act, batch, h = 3, 1, 8, 256  # TD3's defaults: two critics [256, 256]
    flops = uf.update_flops("td3", obs, act, batch)
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
