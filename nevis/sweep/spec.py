"""Sweep definitions: `get_sweep()` in an experiments/ file, checked before any work.

A sweep is declared next to the experiment it varies. `get_sweep(name="")` returns a dict:

    {"trials": [{"learner.optimizer.learning_rate": 1e-3}, ...]}      # a list of trials, or
    {"space": {"learner.optimizer.learning_rate": {"loguniform": [1e-4, 1e-1]},
               "learner.label_smoothing": {"grid": [0.0, 0.1]}},
     "search": "random", "num_samples": 8, "seed": 0}                 # a search space

with, optionally, `overrides` (fixed for every trial), `metric` (a per-split field of
summary.json, default `stream_error`), `split` (default: the stream's first scored split),
`mode` (`min`/`max`, default from the metric), `search_kwargs` (for a Ray searcher) and
`description`. Keys are config paths as on the command line without `--config.`
(`learner.…` or `stream.…`). Space entries: a value (fixed), or one of {"grid": [...]},
{"choice": [...]}, {"uniform": [lo, hi]}, {"loguniform": [lo, hi]}, {"randint": [lo, hi]}
(hi excluded), or a `ray.tune` search-space object. `search`: `grid` (every combination of
the grid entries; the default), `random` (samples the space `num_samples` times, seeded), or
a Ray Tune searcher by name (`optuna`, `hyperopt`, … with its package installed).

Nothing here imports Ray until a search space is built, so a bad sweep fails in a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

from nevis import configs

# Per-split fields of summary.json a sweep can optimise, with the direction that is better.
METRICS = {
    "stream_error": "min",
    "stream_error_successful_only": "min",
    "unique_task_error": "min",
    "final_stream_error": "min",
    "average_forgetting": "min",
    "average_single_label_accuracy": "max",
    "pooled_single_label_accuracy": "max",
    "average_multi_label_mean_average_precision": "max",
}
DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
BASIC_SEARCHES = ("grid", "random")
SPEC_KEYS = ("trials", "space", "overrides", "search", "search_kwargs", "num_samples", "seed",
             "metric", "split", "mode", "description")


class SweepError(ValueError):
    """A sweep definition or flag that cannot work; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: what varies, how it is searched, and what is optimised."""

    name: str  # e.g. "independent:lr"
    trials: tuple[dict[str, Any], ...] | None  # an explicit list of trials, or
    space: dict[str, Any] | None  # a search space
    overrides: dict[str, Any]  # fixed for every trial
    search: str
    search_kwargs: dict[str, Any]
    num_samples: int
    seed: int
    metric: str
    split: str | None  # None: the stream's first scored split
    mode: str
    description: str = ""

    @property
    def varied_keys(self) -> list[str]:
        """The config keys that differ between trials (the table's override columns)."""
        if self.trials is not None:
            return sorted({k for t in self.trials for k in t})
        return sorted(k for k, v in (self.space or {}).items() if _is_distribution(v))

    def identity(self) -> dict[str, Any]:
        """JSON of everything that decides the trials (a re-launch must match it)."""
        return json.loads(json.dumps({
            "trials": self.trials, "space": self.space, "overrides": self.overrides,
            "search": self.search, "search_kwargs": self.search_kwargs,
            "num_samples": self.num_samples, "seed": self.seed, "metric": self.metric,
            "split": self.split, "mode": self.mode,
        }, sort_keys=True, default=repr))

    def param_space(self) -> dict[str, Any]:
        """Ray Tune's param_space: each trial's config is {"overrides": {key: value}}."""
        from ray import tune

        if self.trials is not None:
            return {"overrides": tune.grid_search([dict(t) for t in self.trials])}
        return {"overrides": {k: _to_ray(k, v) for k, v in (self.space or {}).items()}}

    def searcher(self) -> Any:
        """The Ray Tune search algorithm (None: Ray's default, which expands the grid)."""
        from ray.tune.search import BasicVariantGenerator, create_searcher

        if self.search in BASIC_SEARCHES:
            return BasicVariantGenerator(random_state=self.seed)
        try:
            return create_searcher(self.search, **self.search_kwargs)
        except ImportError as e:
            raise SweepError(f"search {self.search!r} needs a package that is not installed "
                             f"({e}); pip install it or use search='random'.") from None


def _is_distribution(value: Any) -> bool:
    if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS:
        return True
    return type(value).__module__.startswith("ray.tune.search")  # a ray.tune Domain


def _to_ray(key: str, value: Any) -> Any:
    from ray import tune

    if not isinstance(value, Mapping) or not _is_distribution(value):
        return value
    (kind, args), = value.items()
    if kind == "grid":
        return tune.grid_search(list(args))
    if kind == "choice":
        return tune.choice(list(args))
    lo, hi = args
    return {"uniform": tune.uniform, "loguniform": tune.loguniform,
            "randint": tune.randint}[kind](lo, hi)


def _check_distribution(key: str, value: Any) -> None:
    if not isinstance(value, Mapping) or not _is_distribution(value):
        return
    (kind, args), = value.items()
    if not isinstance(args, list | tuple) or not args:
        raise SweepError(f"space entry {key!r}: {kind} needs a non-empty list, got {args!r}.")
    if kind in ("uniform", "loguniform", "randint") and len(args) != 2:
        raise SweepError(f"space entry {key!r}: {kind} needs [low, high], got {args!r}.")


def check_keys(config: ConfigDict, keys: list[str], where: str) -> None:
    """Every key names an existing config value (`learner.…` or `stream.…`)."""
    for key in keys:
        node, walked = config, []
        for part in key.split("."):
            if not isinstance(node, ConfigDict) or part not in node:
                at = ".".join(walked) or "config"
                valid = ", ".join(sorted(node)) if isinstance(node, ConfigDict) else "(a value)"
                raise SweepError(f"{where}: unknown config key {key!r}: {at} has {valid}.")
            node = node[part]
            walked.append(part)


def make_spec(raw: Mapping[str, Any], name: str, base: ConfigDict) -> SweepSpec:
    """Checks a `get_sweep()` result against the run's config; raises SweepError."""
    if not isinstance(raw, Mapping):
        raise SweepError(f"sweep {name}: get_sweep() returned {type(raw).__name__}; return a "
                         "dict with 'trials' (a list of override dicts) or 'space'.")
    raw = dict(raw.to_dict() if isinstance(raw, ConfigDict) else raw)
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise SweepError(f"sweep {name}: unknown field(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(SPEC_KEYS)}.")
    if ("trials" in raw) == ("space" in raw):
        raise SweepError(f"sweep {name}: give exactly one of 'trials' (a list of override "
                         "dicts) or 'space' (a search space).")
    overrides = dict(raw.get("overrides") or {})
    trials = space = None
    if "trials" in raw:
        trials = tuple(dict(t) for t in raw["trials"])
        if not trials or not all(isinstance(t, Mapping) for t in raw["trials"]):
            raise SweepError(f"sweep {name}: 'trials' must be a non-empty list of dicts.")
        keys = {k for t in trials for k in t}
    else:
        space = dict(raw["space"])
        for key, value in space.items():
            _check_distribution(key, value)
        keys = set(space)
    check_keys(base, sorted(keys | set(overrides)), f"sweep {name}")
    search = str(raw.get("search", "grid"))
    if trials is not None and search != "grid":
        raise SweepError(f"sweep {name}: a list of trials runs as given (search='grid'); use "
                         f"'space' for search={search!r}.")
    if search == "grid" and space is not None:
        sampled = [k for k, v in space.items() if _is_distribution(v)
                   and not (isinstance(v, Mapping) and "grid" in v)]
        if sampled:
            raise SweepError(f"sweep {name}: search='grid' cannot sample {', '.join(sampled)}; "
                             "use {'grid': [...]} for them or search='random'.")
    if search not in BASIC_SEARCHES:
        from ray.tune.search import SEARCH_ALG_IMPORT

        choices = [*BASIC_SEARCHES, *(s for s in SEARCH_ALG_IMPORT if s not in
                                      ("variant_generator", "random"))]
        if search not in choices:
            raise SweepError(f"sweep {name}: unknown search {search!r}; valid choices: "
                             f"{', '.join(choices)}.")
        grids = [k for k, v in (space or {}).items() if isinstance(v, Mapping) and "grid" in v]
        if grids:
            raise SweepError(f"sweep {name}: search={search!r} cannot take grid entries "
                             f"({', '.join(grids)}); use choice or a range.")
    metric = str(raw.get("metric", "stream_error"))
    if metric not in METRICS:
        raise SweepError(f"sweep {name}: unknown metric {metric!r}; valid choices: "
                         f"{', '.join(METRICS)}.")
    mode = str(raw.get("mode", METRICS[metric]))
    if mode not in ("min", "max"):
        raise SweepError(f"sweep {name}: mode={mode!r}; valid choices: min, max.")
    split = raw.get("split")
    splits = tuple(base.stream.prediction_splits)
    if split is not None and split not in splits:
        raise SweepError(f"sweep {name}: split {split!r} is not scored by this stream "
                         f"(scored: {', '.join(splits)}); set stream.prediction_splits.")
    num_samples = int(raw.get("num_samples", 1))
    if num_samples < 1:
        raise SweepError(f"sweep {name}: num_samples={num_samples} must be at least 1.")
    return SweepSpec(
        name=name, trials=trials, space=space, overrides=overrides, search=search,
        search_kwargs=dict(raw.get("search_kwargs") or {}), num_samples=num_samples,
        seed=int(raw.get("seed", 0)), metric=metric, split=split, mode=mode,
        description=str(raw.get("description", "")),
    )


def _load_get_sweep(path: Path):
    spec = importlib.util.spec_from_file_location(f"_nevis_sweep_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, "get_sweep", None)


def sweep_file(learner: str, sweep: str) -> tuple[Path, str]:
    """(the file defining the sweep, the name passed to its get_sweep).

    `--sweep=NAME` is the learner's own file's sweep NAME (empty: its default sweep);
    `--sweep=FILE.py` or `FILE.py:NAME` is another file's.
    """
    if ".py" in sweep:
        file, _, arg = sweep.partition(".py")
        return Path(file + ".py").expanduser(), arg.removeprefix(":")
    path = Path(learner) if learner.endswith(".py") else configs.EXPERIMENTS / f"{learner}.py"
    return path, sweep


def load_spec(learner: str, sweep: str, base: ConfigDict) -> SweepSpec:
    """The checked sweep `--sweep` names for `--learner` (see `sweep_file`)."""
    path, arg = sweep_file(learner, sweep)
    if not path.is_file():
        raise SweepError(f"no sweep file {path}; give --sweep=NAME (a sweep of the learner's "
                         "file) or --sweep=FILE.py[:NAME].")
    get_sweep = _load_get_sweep(path)
    if get_sweep is None:
        with_sweeps = sorted(p.stem for p in configs.EXPERIMENTS.glob("*.py")
                             if "def get_sweep" in p.read_text())
        raise SweepError(f"{path} defines no get_sweep(); files with sweeps: "
                         f"{', '.join(with_sweeps) or 'none'} (or write one, see nevis.sweep).")
    takes_name = bool(inspect.signature(get_sweep).parameters)
    if arg and not takes_name:
        raise SweepError(f"{path}: get_sweep() takes no sweep name; drop ':{arg}' / "
                         f"--sweep={arg}.")
    try:
        raw = get_sweep(arg) if takes_name else get_sweep()
    except (KeyError, ValueError) as e:
        raise SweepError(f"{path}: {e}") from None
    return make_spec(raw, f"{path.stem}:{arg}" if arg else path.stem, base)


def cli_value(value: Any) -> str:
    """A config value as nevis.run's `--config.KEY=VALUE` parses it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        inner = ", ".join(repr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def override_flags(overrides: Mapping[str, Any]) -> list[str]:
    return [f"--config.{k}={cli_value(v)}" for k, v in sorted(overrides.items())]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "-".join(_short(v) for v in value)
    return str(value)


def trial_name(number: int, overrides: Mapping[str, Any]) -> str:
    """`003_learning_rate=0.01,label_smoothing=0.1`: the trial's number in the sweep and its
    overrides, readable in directory listings and TensorBoard. The number keeps two trials
    with equal overrides (repeats, random duplicates) apart; a hash keeps truncated names
    distinct."""
    parts = ",".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in sorted(overrides.items()))
    slug = re.sub(r"[^A-Za-z0-9._=,+-]", "_", parts) or "defaults"
    if len(slug) > 64:
        digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=repr).encode())
        slug = f"{slug[:55]}~{digest.hexdigest()[:8]}"
    return f"{number:03d}_{slug}"
