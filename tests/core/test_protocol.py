"""The agent protocol: every agent is a `core.types.Agent`, its hooks have defaults, none is probed for."""

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos import registry
from polyak.core.types import Agent
from tests.offline_data import random_pendulum

ROOT = Path(__file__).resolve().parents[2]


class Minimal(Agent):
    obs_dim, act_dim = 3, 2


def test_default_hooks():
    agent, state, action = Minimal(), {"w": jnp.ones(2)}, jnp.zeros((4, 2))
    assert agent.explore(state, action, jax.random.PRNGKey(0), jnp.int32(5)) is action
    uniform = np.asarray(agent.random_action(jax.random.PRNGKey(0), 1000))
    assert uniform.shape == (1000, 2) and -1.0 <= uniform.min() < -0.9 and 0.9 < uniform.max() <= 1.0
    assert agent.start_run(state, 10_000) is state
    assert agent.return_steps == 1 and not agent.has_critic
    assert agent.entropy_temperature(state) is None
    with pytest.raises(NotImplementedError, match="no Q"):
        agent.q_values(state, jnp.zeros((1, 3)), jnp.zeros((1, 2)))
    with pytest.raises(NotImplementedError, match="no entropy"):
        agent.policy_entropy(state, jnp.zeros((1, 3)), jax.random.PRNGKey(0))


SOFT = {"sac", "tqc", "crossq", "redq", "sac_n", "droq", "mopo"}  # maximum-entropy agents: a temperature to report
# Evolution strategies search policy parameters with a `Strategy` (ask/tell), not an RL agent; tabular is NumPy.
AGENT_FAMILIES = ("offpolicy", "onpolicy", "offline")


@pytest.fixture(scope="module")
def offline_data(tmp_path_factory):
    yield from random_pendulum(tmp_path_factory, "test/Pendulum-v1/protocol-v0", 2, 20)


@pytest.mark.parametrize("name", [n for n in registry.names() if registry.entry(n).family in AGENT_FAMILIES])
def test_every_deep_agent_follows_the_protocol(name, offline_data):
    cls, family = registry.algorithm_class(name), registry.entry(name).family
    env = "Pendulum-v1" if "Box" in registry.entry(name).action_kinds else "CartPole-v1"
    model = cls("MlpPolicy", env, seed=0, **({"dataset": offline_data} if family == "offline" else {}))
    agent, state = model.agent, model.learner.agent
    assert isinstance(agent, Agent)
    assert agent.has_critic == (family in ("offpolicy", "offline"))
    soft = agent.entropy_temperature(state)
    assert (soft is not None) == (name in SOFT)
    if agent.has_critic:
        q = agent.q_values(state, jnp.zeros((3, agent.obs_dim)), jnp.zeros((3, agent.act_dim)))
        assert q.ndim == 2 and q.shape[1] == 3


def _hasattr_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr"]


def test_no_machinery_probes_for_hooks():
    """Hooks have defaults, so nothing asks whether an agent, a learner or a model has one."""
    files = [p for p in (ROOT / "polyak" / "algos").rglob("*.py") if "tabular" not in p.parts]
    found = [hit for path in files + [ROOT / "polyak" / "evaluation.py"] for hit in _hasattr_calls(path)]
    assert not found, found
