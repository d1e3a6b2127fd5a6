"""polyak/runs/zoo.py: every recorded entry names settings its algorithm's config has and the config holds them, so
a misspelt key fails here rather than in a user's `polyak train` run."""

import pytest

from polyak.algos import registry
from polyak.runs.zoo import TUNED, tuned_hyperparameters


@pytest.mark.parametrize("algo, env_id", sorted(TUNED), ids=lambda v: str(v))
def test_every_entry_builds_its_algorithms_config(algo, env_id):
    entry = tuned_hyperparameters(algo, env_id)
    for loop_key in ("n_envs", "env_kwargs"):  # loop-level keys, not config fields
        entry.pop(loop_key, None)
    config_cls = registry.algorithm_class(algo).config_cls
    if "net_arch" in entry:
        entry = {**config_cls.policy_kwargs_to_fields({"net_arch": entry.pop("net_arch")}), **entry}
    config = config_cls(**entry)
    for name, value in entry.items():  # the config holds what the entry says (sequences as lists or tuples)
        assert _plain(getattr(config, name)) == _plain(value), name


def _plain(value):
    return tuple(value) if isinstance(value, list | tuple) else value
