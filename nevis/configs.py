"""Finding and loading `get_config()` files by name (experiments/ and stream_configs/)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ml_collections import ConfigDict

from nevis.streams import NEVIS_VARIANTS

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO_ROOT / "experiments"
STREAM_CONFIGS = REPO_ROOT / "stream_configs"


class ConfigError(ValueError):
    pass


def _names(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.py") if not p.stem.startswith("_"))


def _load(path: Path, *args: str) -> ConfigDict:
    # Configs build on each other (`from experiments import independent`): make the repository
    # importable however the caller was started (pytest, a notebook, another working directory).
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    spec = importlib.util.spec_from_file_location(f"_nevis_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)


def learner_names() -> list[str]:
    return _names(EXPERIMENTS)


def stream_names() -> list[str]:
    return sorted({*(_names(STREAM_CONFIGS)), *NEVIS_VARIANTS} - {"nevis"})


def learner_config(name: str) -> ConfigDict:
    """`name` is an experiments/ config name or a path to a get_config() file."""
    path = Path(name) if name.endswith(".py") else EXPERIMENTS / f"{name}.py"
    if not path.is_file():
        raise ConfigError(
            f"Unknown learner {name!r}; valid choices: {', '.join(learner_names())} "
            f"(configs in {EXPERIMENTS}), or a path to a config file."
        )
    return _load(path)


def stream_config(name: str) -> ConfigDict:
    if name.endswith(".py") and Path(name).is_file():
        return _load(Path(name))
    if name in NEVIS_VARIANTS:
        return _load(STREAM_CONFIGS / "nevis.py", name)
    path = STREAM_CONFIGS / f"{name}.py"
    if not path.is_file() or name == "nevis":
        raise ConfigError(
            f"Unknown stream {name!r}; valid choices: {', '.join(stream_names())}, or a path "
            "to a config file."
        )
    return _load(path)
