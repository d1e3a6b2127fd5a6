"""The monitor: the first non-finite metric and the |Q| bound, from explicit values (no metric names)."""

import jax.numpy as jnp
import numpy as np
import pytest

from polyak.core.monitor import (
    Diagnostics,
    check_update,
    log_values,
    monitor_init,
    nonfinite_code,
    nonfinite_message,
    nonfinite_names,
    observe_rewards,
    q_divergence_message,
    record_nonfinite,
    warning_message,
)
from polyak.core.types import UpdateInfo


def metrics(**values):
    return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}


def test_nonfinite_code_sets_one_bit_per_sorted_name():
    m = metrics(b=1.0, a=np.nan, c=[1.0, np.inf])  # sorted: a, b, c; arrays count when any entry is bad
    code = int(nonfinite_code(m))
    assert code == 0b101 and nonfinite_names(m, code) == ["a", "c"]
    assert int(nonfinite_code(metrics(a=1.0, b=2.0))) == 0


def test_record_nonfinite_keeps_the_first_step():
    step, code = record_nonfinite(metrics(a=1.0), 5, jnp.int32(-1), jnp.int32(0))
    assert (int(step), int(code)) == (-1, 0)
    step, code = record_nonfinite(metrics(a=np.nan, b=1.0), 7, step, code)
    assert (int(step), int(code)) == (7, 1)
    step, code = record_nonfinite(metrics(a=1.0, b=np.nan), 9, step, code)
    assert (int(step), int(code)) == (7, 1)  # a later failure does not overwrite the first


def test_observe_rewards_ignores_rows_that_are_not_transitions():
    mon = observe_rewards(monitor_init({}), jnp.asarray([-3.0, 10.0, 1.0]), jnp.asarray([True, False, True]))
    assert float(mon.reward_abs_max) == 3.0
    assert float(observe_rewards(mon, jnp.asarray([-2.0])).reward_abs_max) == 3.0


@pytest.mark.parametrize("soft_bonus,exceeds", [(0.0, True), (1.0, False)])
def test_q_bound_includes_the_soft_bonus(soft_bonus, exceeds):
    # max |r| = 1, gamma = 0.5: |Q| <= (1 + bonus) / 0.5 = 2 or 4; |Q| = 3 exceeds only the first
    mon = observe_rewards(monitor_init(metrics(loss=0.0)), jnp.asarray([1.0]))
    mon = check_update(mon, metrics(loss=0.1), UpdateInfo(jnp.float32(3.0), jnp.float32(soft_bonus)), 42, 0.5)
    assert int(mon.q_exceed_step) == (42 if exceeds else -1) and float(mon.q_abs_max) == 3.0
    assert int(mon.nonfinite_step) == -1 and float(mon.metrics["loss"]) == pytest.approx(0.1)
    message = q_divergence_message(mon, 0.5)
    assert (message is not None) == exceeds
    if exceeds:
        assert "environment step 42" in message and "~ 2" in message


def test_gamma_one_has_no_bound():
    mon = check_update(monitor_init({}), {}, UpdateInfo(jnp.float32(1e9)), 1, 1.0)
    assert int(mon.q_exceed_step) == -1


def test_diagnostics_log_values_and_messages():
    mon = check_update(monitor_init(metrics(loss=0.0)), metrics(loss=np.inf), UpdateInfo(jnp.float32(2.0)), 3, 0.9)
    with_q = Diagnostics(mon.metrics, mon.nonfinite_step, mon.nonfinite_code, mon)
    assert set(log_values(with_q)) == {"loss", "q_abs_max_so_far"}
    assert nonfinite_message(with_q) == ("non-finite loss in the update at environment step 3 (training stopped; "
                                         "lower the learning rate or scale the rewards)")
    assert warning_message(with_q, 0.9) is not None  # |Q| = 2 > 0 / (1 - 0.9)
    without_q = Diagnostics(metrics(loss=1.0), jnp.int32(-1), jnp.int32(0))
    assert set(log_values(without_q)) == {"loss"}
    assert nonfinite_message(without_q) is None and warning_message(without_q, 0.9) is None
