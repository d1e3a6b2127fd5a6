"""Offline RL datasets in Minari's format: write, read, validate, collect, import, and fill a replay buffer.

A dataset is a list of episodes; episode i holds, as Minari stores it (HDF5, `minari[hdf5]`),

    observations  (T + 1, obs_dim)  s_0 .. s_T: the last is the *true* final observation (also on truncation)
    actions       (T, act_dim)      in the environment's units
    rewards       (T,)
    terminations  (T,)              True only at the last step, where the episode reached a terminal state
    truncations   (T,)              True only at the last step, where it was cut (time limit, end of a log)

Every episode ends with a termination or a truncation and has neither flag before its last step; loading
checks that, the shapes and dtypes against the dataset's spaces, finite values and actions inside the action
space, and names the episode, the step and the column of the first problem (`DatasetError`). Datasets live
under $MINARI_DATASETS_PATH (default ~/.minari/datasets), by id `NAMESPACE/ENV/NAME-vN`; nothing is ever
downloaded.

`OfflineData` is a dataset flattened into transitions (s, a, r, s', terminated, truncated) with the episode
index of each row; `replay_buffer` turns transitions into a full, device-resident `ReplayBuffer`, whose
`terminated` column is the bootstrap mask (a truncated row bootstraps from its true final observation).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from polyak.core.types import Transition
from polyak.data.buffer import ReplayBuffer

MINARI_REQUIREMENT = "minari[hdf5]==0.5.4"
ACTION_TOLERANCE = 1e-5  # actions this far (relative to the range) outside the action space are still accepted
FLAG_COLUMNS = ("terminations", "truncations")


class DatasetError(ValueError):
    """A dataset that cannot be used as it is: the message names the dataset, episode, step and column."""


@dataclass(frozen=True)
class Episode:
    """One episode in Minari's layout (module docstring); actions in the environment's units."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards))


@dataclass(frozen=True)
class OfflineData:
    """A dataset as transitions: row t is (obs, action, reward, next_obs, terminated, truncated) of
    episode `episode[t]`; actions in the environment's units."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    env_id: str | None = None
    dataset_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # gymnasium.make keywords the data was collected with

    def __len__(self) -> int:
        return len(self.reward)

    @property
    def n_episodes(self) -> int:
        return int(self.episode.max()) + 1 if len(self.episode) else 0

    def episode_returns(self) -> np.ndarray:
        return np.bincount(self.episode, weights=self.reward.astype(np.float64), minlength=self.n_episodes)

    def digest(self) -> str:
        """SHA-256 of the transitions: a model records it, and training resumes only on the same data."""
        h = hashlib.sha256()
        for a in (self.obs, self.action, self.reward, self.next_obs, self.terminated):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


# -- validation ------------------------------------------------------------------------------------
def check_spaces(observation_space: gym.Space, action_space: gym.Space, where: str = "dataset") -> None:
    """Offline learners here need a flat Box observation and a flat, bounded Box action."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise DatasetError(f"{where}: the observation space must be a flat 1-D Box, got {observation_space}")
    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise DatasetError(f"{where}: the action space must be a flat 1-D Box, got {action_space}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))) or \
            np.any(action_space.high <= action_space.low):
        raise DatasetError(f"{where}: the action space needs finite bounds with high > low, got {action_space}")


def _numeric(name: str, values: np.ndarray, where: str, flag: bool = False) -> np.ndarray:
    values = np.asarray(values)
    if flag:
        if values.dtype == bool:
            return values
        if np.issubdtype(values.dtype, np.number) and np.all((values == 0) | (values == 1)):
            return values.astype(bool)
        raise DatasetError(f"{where}: {name} must be booleans (or 0/1), got dtype {values.dtype}"
                           + (f" with values {np.unique(values)[:5].tolist()}" if values.dtype != object else ""))
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)) \
            or values.dtype == bool:
        raise DatasetError(f"{where}: {name} must be numbers, got dtype {values.dtype}")
    bad = ~np.isfinite(values.astype(np.float64))
    if bad.any():
        step = int(np.argwhere(bad)[0][0])
        raise DatasetError(f"{where}: {name} at step {step} is not finite ({values[step].tolist()})")
    return values


def validate_episode(episode: Episode, observation_space: gym.spaces.Box, action_space: gym.spaces.Box,
                     where: str = "episode") -> Episode:
    """The episode with float32 columns and boolean flags, or DatasetError naming `where`, the column and
    the step of the first problem: shapes against the spaces, dtypes, non-finite values, actions outside
    the action space, and the boundary flags (exactly one of them ends the episode, none before)."""
    obs_dim, act_dim = observation_space.shape[0], action_space.shape[0]
    obs = _numeric("observations", episode.observations, where)
    act = _numeric("actions", episode.actions, where)
    rew = _numeric("rewards", episode.rewards, where)
    term = _numeric("terminations", episode.terminations, where, flag=True)
    trunc = _numeric("truncations", episode.truncations, where, flag=True)
    n = rew.shape[0] if rew.ndim == 1 else -1
    if rew.ndim != 1 or n < 1:
        raise DatasetError(f"{where}: rewards must have shape (T,) with T >= 1 steps, got {rew.shape}")
    expected = {"observations": (obs, (n + 1, obs_dim)), "actions": (act, (n, act_dim)),
                "terminations": (term, (n,)), "truncations": (trunc, (n,))}
    for name, (values, shape) in expected.items():
        if values.shape != shape:
            extra = (" (T + 1 rows: the observation after the last step is the final observation)"
                     if name == "observations" else "")
            raise DatasetError(f"{where}: {name} has shape {values.shape}, expected {shape} for {n} steps "
                               f"of a {obs_dim}-dimensional observation and {act_dim}-dimensional action{extra}")
    span = action_space.high - action_space.low
    outside = (act < action_space.low - ACTION_TOLERANCE * span) | (act > action_space.high + ACTION_TOLERANCE * span)
    if outside.any():
        step, dim = (int(i) for i in np.argwhere(outside)[0])
        raise DatasetError(f"{where}: action at step {step} ({act[step].tolist()}) is outside the action space "
                           f"[{action_space.low.tolist()}, {action_space.high.tolist()}] in dimension {dim}")
    ended = term | trunc
    if ended[:-1].any():
        step = int(np.flatnonzero(ended[:-1])[0])
        name = "terminations" if term[step] else "truncations"
        raise DatasetError(f"{where}: {name} is True at step {step} of {n}: a termination or truncation must be "
                           "the episode's last step (split the episode there)")
    if not ended[-1]:
        raise DatasetError(f"{where}: its last step (step {n - 1}) is neither terminated nor truncated: mark the "
                           "episode's end (truncations=True where it was cut off, e.g. at the end of a log)")
    return Episode(obs.astype(np.float32), act.astype(np.float32), rew.astype(np.float32), term, trunc)


def flatten(episodes: list[Episode], observation_space: gym.spaces.Box, action_space: gym.spaces.Box,
            env_id: str | None = None, dataset_id: str | None = None,
            metadata: dict[str, Any] | None = None) -> OfflineData:
    """Validated episodes -> transitions (each episode's s' column is its observations shifted by one)."""
    name = dataset_id or "dataset"
    if not episodes:
        raise DatasetError(f"{name}: no episodes")
    check_spaces(observation_space, action_space, name)
    eps = [validate_episode(e, observation_space, action_space, f"{name}, episode {i}")
           for i, e in enumerate(episodes)]
    cat = np.concatenate
    return OfflineData(
        obs=cat([e.observations[:-1] for e in eps]), action=cat([e.actions for e in eps]),
        reward=cat([e.rewards for e in eps]), next_obs=cat([e.observations[1:] for e in eps]),
        terminated=cat([e.terminations for e in eps]), truncated=cat([e.truncations for e in eps]),
        episode=np.repeat(np.arange(len(eps)), [len(e) for e in eps]),
        observation_space=observation_space, action_space=action_space, env_id=env_id, dataset_id=dataset_id,
        metadata=dict(metadata or {}))


# -- Minari storage --------------------------------------------------------------------------------
def _minari():
    try:
        import minari
    except ImportError:  # pragma: no cover - a dependency of polyak
        raise ImportError(f"offline datasets need Minari: pip install '{MINARI_REQUIREMENT}'") from None
    return minari


def datasets_root() -> Path:
    """Where datasets live: $MINARI_DATASETS_PATH, else ~/.minari/datasets (Minari's own rule)."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root else Path.home() / ".minari" / "datasets"


def dataset_path(dataset_id: str) -> Path:
    return datasets_root() / dataset_id


def write_dataset(dataset_id: str, episodes: list[Episode], observation_space: gym.spaces.Box,
                  action_space: gym.spaces.Box, env_id: str | None = None, algorithm_name: str = "unknown",
                  description: str = "", overwrite: bool = False, env_kwargs: dict[str, Any] | None = None) -> Path:
    """Validate the episodes and write them as the Minari dataset `dataset_id` (HDF5); returns its folder.

    `env_id` (a registered Gymnasium id) with the `gymnasium.make` keywords `env_kwargs` the data was
    collected with is recorded as the dataset's environment (Minari's env spec), the one an offline
    algorithm evaluates in. An existing dataset of that id is an error unless `overwrite`.
    """
    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    _check_id(dataset_id)
    if not episodes:
        raise DatasetError(f"{dataset_id}: no episodes")
    check_spaces(observation_space, action_space, dataset_id)
    episodes = [validate_episode(e, observation_space, action_space, f"{dataset_id}, episode {i}")
                for i, e in enumerate(episodes)]
    path = dataset_path(dataset_id)
    if path.exists():
        if not overwrite:
            raise DatasetError(f"dataset {dataset_id} already exists at {path} (overwrite=True, or "
                               "--overwrite, replaces it)")
        minari.delete_dataset(dataset_id)
    buffers = []
    for i, e in enumerate(episodes):
        buffers.append(EpisodeBuffer(id=i, observations=e.observations, actions=e.actions,
                                     rewards=e.rewards.tolist(), terminations=e.terminations.tolist(),
                                     truncations=e.truncations.tolist()))
    if env_kwargs and env_id is None:
        raise DatasetError(f"{dataset_id}: env_kwargs {env_kwargs} given without the env id they belong to")
    env = gym.spec(env_id) if env_id is not None else None
    if env_kwargs:
        try:
            json.dumps(env_kwargs)
        except TypeError as err:
            raise DatasetError(f"{dataset_id}: env_kwargs must be JSON values (numbers, strings, lists): {err}") from None
        env = dataclasses.replace(env, kwargs={**env.kwargs, **env_kwargs})
    with warnings.catch_warnings():  # Minari asks for author, e-mail and a code link; none are required
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(
            dataset_id, buffers, env=env, algorithm_name=algorithm_name, description=description or dataset_id,
            observation_space=observation_space, action_space=action_space, author="polyak",
            author_email="-", code_permalink="-", requirements=["polyak"])
    return path


def _check_id(dataset_id: str) -> None:
    parts = dataset_id.split("/")
    if not parts[-1] or "-v" not in parts[-1] or not parts[-1].rsplit("-v", 1)[1].isdigit() or len(parts) > 3:
        raise DatasetError(f"dataset id {dataset_id!r} must look like NAMESPACE/ENV/NAME-v0 (e.g. "
                           "polyak/Pendulum-v1/medium-v0)")


def _space(meta: dict, key: str, dataset_id: str) -> gym.Space:
    space = meta.get(key)
    if space is None:
        raise DatasetError(f"dataset {dataset_id}: its metadata has no {key}")
    if isinstance(space, str):
        from minari.serialization import deserialize_space
        space = deserialize_space(space)
    return space


def load_dataset(dataset_id: str) -> OfflineData:
    """Read and validate the local Minari dataset `dataset_id` (DatasetError names what is wrong)."""
    minari = _minari()
    path = dataset_path(dataset_id)
    if not (path / "data").is_dir():
        known = sorted(minari.list_local_datasets()) if datasets_root().is_dir() else []
        raise DatasetError(f"dataset {dataset_id} not found under {datasets_root()} (MINARI_DATASETS_PATH); "
                           f"local datasets: {', '.join(known) or 'none'}; make one with `polyak data collect` "
                           "or `polyak data import`")
    try:
        ds = minari.load_dataset(dataset_id)
        meta = ds.storage.metadata
        episodes = [Episode(e.observations, e.actions, e.rewards, e.terminations, e.truncations)
                    for e in ds.iterate_episodes()]
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001  (Minari's own errors on a damaged file: name the dataset)
        raise DatasetError(f"dataset {dataset_id} at {path} cannot be read: {type(e).__name__}: {e}") from e
    for i, e in enumerate(episodes):
        if not isinstance(e.observations, np.ndarray) or not isinstance(e.actions, np.ndarray):
            raise DatasetError(f"dataset {dataset_id}, episode {i}: observations and actions must be arrays "
                               "(dict or tuple spaces are not supported)")
    observation_space = _space(meta, "observation_space", dataset_id)
    action_space = _space(meta, "action_space", dataset_id)
    env_id, env_kwargs = _recorded_env(meta.get("env_spec"))
    info = {k: meta[k] for k in ("algorithm_name", "description", "minari_version") if k in meta}
    return dataclasses.replace(flatten(episodes, observation_space, action_space, env_id, dataset_id, info),
                               env_kwargs=env_kwargs)


def _recorded_env(env_spec: Any) -> tuple[str | None, dict[str, Any]]:
    """(env id, the keywords it was made with beyond its registered ones) of a dataset's recorded env spec."""
    if isinstance(env_spec, str):
        env_spec = json.loads(env_spec)
    elif env_spec is not None and not isinstance(env_spec, dict):
        env_spec = {"id": getattr(env_spec, "id", None), "kwargs": getattr(env_spec, "kwargs", {})}
    if not env_spec:
        return None, {}
    env_id, kwargs = env_spec.get("id"), dict(env_spec.get("kwargs") or {})
    registered = gym.registry[env_id].kwargs if env_id in gym.registry else {}
    return env_id, {k: v for k, v in kwargs.items() if k not in registered or registered[k] != v}


def dataset_env(dataset_id: str) -> tuple[str | None, dict[str, Any]]:
    """The environment recorded in a local dataset's metadata, without reading its data: (its id, or None when
    none is recorded; the `gymnasium.make` keywords it was collected with beyond the registered ones)."""
    meta_path = dataset_path(dataset_id) / "data" / "metadata.json"
    if not meta_path.is_file():
        load_dataset(dataset_id)  # raises the not-found error that lists the local datasets
    return _recorded_env(json.loads(meta_path.read_text()).get("env_spec"))


def dataset_info(dataset_id: str) -> dict[str, Any]:
    """Size, episodes, steps and return statistics of a local dataset (`polyak data info`)."""
    data = load_dataset(dataset_id)
    returns = data.episode_returns()
    size = sum(f.stat().st_size for f in dataset_path(dataset_id).rglob("*") if f.is_file())
    return {"dataset_id": dataset_id, "path": str(dataset_path(dataset_id)), "env_id": data.env_id,
            "env_kwargs": data.env_kwargs,
            "size_bytes": size, "episodes": data.n_episodes, "steps": len(data),
            "terminations": int(data.terminated.sum()), "truncations": int(data.truncated.sum()),
            "return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "episode_length_mean": float(len(data) / data.n_episodes),
            "observation_space": str(data.observation_space), "action_space": str(data.action_space),
            **data.metadata}


# -- making datasets -------------------------------------------------------------------------------
def collect_episodes(env: gym.Env, act: Callable[[np.ndarray, dict], np.ndarray], n_episodes: int, seed: int = 0,
                     noise: float = 0.0, on_reset: Callable[[gym.Env, np.ndarray, dict], None] | None = None
                     ) -> list[Episode]:
    """Run `act(observation, info) -> action` (environment units) for `n_episodes` episodes of a single
    Gymnasium env, reset with seeds seed, seed + 1, ...; `on_reset(env, observation, info)` runs at each reset.

    `noise` > 0 adds N(0, noise^2) per action dimension in the agent's [-1, 1] units (i.e. noise times half
    the action range), clipped to the action space. Terminations and truncations are kept apart, and the
    last observation of each episode is the one the env returned at its last step.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    space = env.action_space
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n_episodes):
        obs, info = env.reset(seed=seed + i)
        if on_reset is not None:
            on_reset(env, obs, info)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        while True:
            action = np.asarray(act(obs, info), np.float32).reshape(space.shape)
            if noise > 0:
                action = action + noise * 0.5 * (space.high - space.low) * rng.standard_normal(space.shape)
            action = np.clip(action, space.low, space.high).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terms.append(bool(terminated))
            truncs.append(bool(truncated))
            if terminated or truncated:
                break
        episodes.append(Episode(np.asarray(observations, np.float32), np.asarray(actions), np.asarray(rewards),
                                np.asarray(terms), np.asarray(truncs)))
    return episodes


class EpisodeRecorder(gym.Wrapper):
    """Records every finished episode of the wrapped env (a "replay" dataset: wrap the env an agent
    trains on, then write `recorder.episodes`). The running episode is added once it ends."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.episodes: list[Episode] = []
        self._current: list | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._current = [[np.asarray(obs, np.float32)], [], [], [], []]
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._current is not None:
            observations, actions, rewards, terms, truncs = self._current
            clipped = np.clip(np.asarray(action, np.float32), self.action_space.low, self.action_space.high)
            observations.append(np.asarray(obs, np.float32))
            actions.append(clipped)
            rewards.append(float(reward))
            terms.append(bool(terminated))
            truncs.append(bool(truncated))
            if terminated or truncated:
                self.episodes.append(Episode(*(np.asarray(c) for c in self._current)))
                self._current = None
        return obs, reward, terminated, truncated, info


# -- importing logged arrays -----------------------------------------------------------------------
IMPORT_COLUMNS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "episode")


def read_columns(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a NumPy .npz, a CSV file or an HDF5 file (top-level datasets).

    A vector column is one array (N, dim) in .npz / HDF5, and the CSV columns NAME_0, NAME_1, ... (or NAME
    alone for one dimension). Known names: obs, action, reward, next_obs (optional), terminated, truncated,
    episode (episode ids; optional when the flags mark every episode's end).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    if suffix in (".h5", ".hdf5"):
        import h5py
        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k]) for k in f.keys() if isinstance(f[k], h5py.Dataset)}
    if suffix == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if len(rows) < 2:
            raise DatasetError(f"{path}: a CSV file needs a header row and at least one data row")
        header, body = [h.strip() for h in rows[0]], rows[1:]
        try:
            table = np.asarray(body, dtype=np.float64)
        except ValueError as e:
            raise DatasetError(f"{path}: every CSV value must be a number ({e})") from None
        groups: dict[str, list[tuple[int, int]]] = {}
        for j, name in enumerate(header):
            base, _, index = name.rpartition("_")
            if base and index.isdigit() and base in IMPORT_COLUMNS:
                groups.setdefault(base, []).append((int(index), j))
            else:
                groups.setdefault(name, []).append((-1, j))
        out = {}
        for name, cols in groups.items():
            cols.sort()
            out[name] = table[:, cols[0][1]] if cols[0][0] < 0 else table[:, [j for _, j in cols]]
        return out
    raise DatasetError(f"{path}: unknown file type {suffix!r} (use .npz, .csv, .h5 or .hdf5)")


def episodes_from_columns(columns: dict[str, np.ndarray], where: str = "columns") -> list[Episode]:
    """Logged rows (s_t, a_t, r_t, flags) -> episodes.

    Episodes end where terminated or truncated is set, or where the episode id changes (ids given without
    flags: every end counts as a truncation unless `terminated` says otherwise). Rows after the last end
    form an episode cut by the end of the log (truncated). Without a `next_obs` column the final
    observation of an episode is unknown: a terminated last step keeps its own observation as a stand-in
    (never bootstrapped from), a truncated last step is dropped (its bootstrap needs the final observation).
    """
    missing = [c for c in ("obs", "action", "reward") if c not in columns]
    if missing:
        raise DatasetError(f"{where}: missing column(s) {', '.join(missing)} (have: {', '.join(sorted(columns))})")
    if "terminated" not in columns and "truncated" not in columns and "episode" not in columns:
        raise DatasetError(f"{where}: needs terminated and truncated flags, or episode ids, to find episodes")
    unknown = sorted(set(columns) - set(IMPORT_COLUMNS))
    if unknown:
        raise DatasetError(f"{where}: unknown column(s) {', '.join(unknown)}; known: {', '.join(IMPORT_COLUMNS)}")
    obs = np.asarray(columns["obs"])
    obs = obs[:, None] if obs.ndim == 1 else obs
    action = np.asarray(columns["action"])
    action = action[:, None] if action.ndim == 1 else action
    n = obs.shape[0]
    reward = np.asarray(columns["reward"]).reshape(-1)
    flags = {k: _numeric(k, np.asarray(columns[k]).reshape(-1), where, flag=True) if k in columns else np.zeros(n, bool)
             for k in ("terminated", "truncated")}
    for name, values in {"action": action, "reward": reward, **flags}.items():
        if values.shape[0] != n:
            raise DatasetError(f"{where}: column {name} has {values.shape[0]} rows, obs has {n}")
    next_obs = None
    if "next_obs" in columns:
        next_obs = np.asarray(columns["next_obs"])
        next_obs = next_obs[:, None] if next_obs.ndim == 1 else next_obs
        if next_obs.shape != obs.shape:
            raise DatasetError(f"{where}: column next_obs has shape {next_obs.shape}, obs has {obs.shape}")
    ends = flags["terminated"] | flags["truncated"]
    truncated = flags["truncated"].copy()
    if "episode" in columns:
        ids = np.asarray(columns["episode"]).reshape(-1)
        if ids.shape[0] != n:
            raise DatasetError(f"{where}: column episode has {ids.shape[0]} rows, obs has {n}")
        change = np.append(ids[1:] != ids[:-1], True)
        inside = ends & ~change
        if inside.any():
            raise DatasetError(f"{where}: row {int(np.flatnonzero(inside)[0])} is terminated or truncated but its "
                               "episode id goes on in the next row")
        truncated |= change & ~flags["terminated"]
        ends = change
    if not ends[-1]:  # the log stops inside an episode
        truncated[-1], ends = True, ends.copy()
        ends[-1] = True
    episodes, start = [], 0
    for end in np.flatnonzero(ends):
        rows = slice(start, end + 1)
        start = end + 1
        term, trunc = flags["terminated"][rows].copy(), truncated[rows].copy()
        if next_obs is not None:
            final = next_obs[end]
            if not np.array_equal(next_obs[rows][:-1], obs[rows][1:]):
                bad = int(np.flatnonzero(np.any(next_obs[rows][:-1] != obs[rows][1:], axis=1))[0]) + rows.start
                raise DatasetError(f"{where}: next_obs of row {bad} differs from obs of row {bad + 1} inside one "
                                   "episode (a missing episode boundary?)")
        elif term[-1]:
            final = obs[end]
        else:  # truncated without its final observation: drop the last step
            if end == rows.start:
                continue
            rows, term, trunc = slice(rows.start, end), term[:-1], trunc[:-1]
            trunc[-1] = True
            final = obs[end]
        episodes.append(Episode(np.concatenate([obs[rows], final[None]]), action[rows], reward[rows], term, trunc))
    if not episodes:
        raise DatasetError(f"{where}: no usable episode (without next_obs, episodes of one truncated step are dropped)")
    return episodes


def import_columns(path: str | Path, dataset_id: str, env_id: str | None = None,
                   observation_space: gym.spaces.Box | None = None, action_space: gym.spaces.Box | None = None,
                   overwrite: bool = False) -> tuple[Path, int]:
    """`polyak data import`: logged columns (`read_columns`) -> the Minari dataset `dataset_id`. The spaces are
    the env's (`env_id`) unless given. Returns (the dataset folder, episodes written)."""
    episodes = episodes_from_columns(read_columns(path), str(path))
    if observation_space is None or action_space is None:
        if env_id is None:
            raise DatasetError("import needs the environment id (--env) or both spaces")
        env = gym.make(env_id)
        observation_space = observation_space or env.observation_space
        action_space = action_space or env.action_space
        env.close()
    return write_dataset(dataset_id, episodes, observation_space, action_space, env_id,
                         algorithm_name=f"imported from {Path(path).name}", overwrite=overwrite), len(episodes)


# -- into a replay buffer ----------------------------------------------------------------------------
def replay_buffer(rows: Transition) -> ReplayBuffer:
    """A full device-resident ReplayBuffer holding exactly `rows` (NumPy or JAX arrays, float32)."""
    data = Transition(*(jnp.asarray(np.asarray(x, np.float32)) for x in rows))
    n = data.reward.shape[0]
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.asarray(n, jnp.int32))
