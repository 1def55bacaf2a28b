"""Train and evaluate a population of models on an upward-generalisation experiment.

    python -m nevis.upward --experiment=prefix_sums                  # the config's regime, seed
    python -m nevis.upward --experiment=prefix_sums --population     # its regimes × seeds
    python -m nevis.upward --experiment=mazes --regimes=unrolled_mixed,unrolled_fixed \
        --seeds=0,1 --config.steps=300 --workdir=runs/mazes-small

Flags: --experiment (a config in experiments/ with name "upward", or a path), --regimes
(comma-separated names from nevis.upward.regimes, or "all"), --seeds, --population (use the
config's `population` regimes, seeds and overrides; --regimes/--seeds still win), --workdir
(default runs/upward-<experiment>[-population], under $NEVIS_OUTPUT_DIR if set),
--overwrite, and any --config.KEY=VALUE. Models run one after another (a plain loop that a
sweep launcher can replace: each model is `run_model(config, workdir)`); re-running the same
command resumes after the last finished model.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

from nevis import configs
from nevis.upward import records
from nevis.upward.regimes import REGIMES, apply_regime


def load_experiment(name: str) -> ConfigDict:
    """An upward experiment config by name (experiments/<name>.py) or path."""
    config = configs.learner_config(name)
    if config.get("name") != "upward":
        raise ValueError(f"experiment {name!r} is not an upward-generalisation config (its name "
                         f"is {config.get('name')!r}); stream learners run with "
                         f"`python -m nevis.run --learner={name}`.")
    config.experiment = Path(name).stem
    return config


def _parse(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false, got {value!r}")
        return value.lower() in ("true", "1")
    if isinstance(like, tuple | list):
        items = [v for v in value.strip("()[] ").split(",") if v.strip()]
        kind = type(like[0]) if like else str
        return tuple(_parse(v.strip(), kind()) if kind is not str else v.strip().strip("'\"")
                     for v in items)
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    if isinstance(like, str):
        return value
    return ast.literal_eval(value)


def apply_overrides(config: ConfigDict, overrides: dict[str, Any]) -> ConfigDict:
    """A copy of `config` with dotted keys set; values given as strings are parsed to the
    existing value's type. An unknown key fails naming the keys that exist there."""
    config = ConfigDict(config.to_dict())
    for dotted, value in overrides.items():
        node, parts = config, dotted.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ConfigDict) or part not in node:
                where = ".".join(parts[:i]) or "config"
                valid = ", ".join(sorted(node)) if isinstance(node, ConfigDict) else "a value"
                raise ValueError(f"unknown config key {dotted!r}: {where} has {valid}.")
            if i < len(parts) - 1:
                node = node[part]
        old = node[parts[-1]]
        if isinstance(value, str) and not isinstance(old, str):
            try:
                value = _parse(value, old)
            except (ValueError, SyntaxError) as e:
                raise ValueError(f"--config.{dotted}={value!r}: {e}") from None
        if isinstance(value, list):
            value = tuple(value)
        node[parts[-1]] = value
    return config


def model_configs(base: ConfigDict, regimes: Sequence[str], seeds: Sequence[int],
                  overrides: dict[str, Any] | None = None) -> list[ConfigDict]:
    """One config per (regime, seed), regime first; overrides apply after the regime."""
    out = []
    for regime in regimes:
        for seed in seeds:
            config = apply_regime(base, regime)
            config.seed = int(seed)
            out.append(apply_overrides(config, overrides or {}))
    return out


def run_model(config: ConfigDict, workdir: Path, log: Callable[[str], None] | None = print
              ) -> list[dict[str, Any]]:
    """Trains (or reloads) one model, evaluates it on every test size, returns its records."""
    from nevis.upward import evaluate, train

    mid = records.model_id(config)
    model_dir = workdir / "models" / mid
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2,
                                                      sort_keys=True, default=str))
    params_file, train_file = model_dir / "params.npz", model_dir / "train.json"
    if params_file.exists() and train_file.exists():
        parts, like = train.Parts.of(train.build_model(config))
        params = records.load_params(params_file, like)
        info = json.loads(train_file.read_text())
        if log:
            log(f"{mid}: reusing trained parameters from {params_file}")
    else:
        if log:
            log(f"{mid}: training ({config.task}, {config.train_size}, {config.solver.grad} "
                f"gradients, {config.solver.name}, init {config.solver.init}, "
                f"jitter {config.solver.budget_jitter}, Jacobian reg "
                f"{config.jacobian_reg.weight})")
        result = train.train(config, log=log)
        parts, params, info = result.parts, result.params, result.info
        records.save_params(params_file, params)
        from nevis import results

        results.write_json(train_file, info)
    if log:
        log(f"{mid}: trained {info['steps_run']} steps in {info['seconds']:.0f}s "
            f"(stopped by {info['stopped_by']}); evaluating")
    sizes = evaluate.evaluate(parts, params, config, log=log)
    return records.model_records(config, info, sizes, workdir)


def run_population(configs_: Sequence[ConfigDict], workdir: Path, header: dict[str, Any],
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Runs every model not yet finished in `workdir` and rewrites the result files."""
    from nevis import results

    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "config.json"
    if config_file.exists():
        previous = json.loads(config_file.read_text())
        if json.dumps(previous, sort_keys=True) != json.dumps(
                json.loads(json.dumps(header, default=str)), sort_keys=True):
            raise ValueError(f"{workdir} holds a population with a different config; rerun "
                             "the same command, choose another --workdir, or pass --overwrite.")
    else:
        results.write_json(config_file, json.loads(json.dumps(header, default=str)))
    events = records.read_events(workdir)
    done = records.completed_models(workdir)
    start = time.perf_counter()
    previous_seconds = 0.0
    summary_file = workdir / "summary.json"
    if summary_file.exists():
        previous_seconds = json.loads(summary_file.read_text()).get("timing", {}).get(
            "seconds", 0.0)
    for config in configs_:
        if records.model_id(config) in done:
            continue
        events.extend(run_model(config, workdir, log))
        results.write_events(workdir / "events.jsonl", events)
        records.write_summary(workdir, events, False,
                              previous_seconds + time.perf_counter() - start)
    return records.write_summary(workdir, events, True,
                                 previous_seconds + time.perf_counter() - start)


def _split_flags(argv: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    flags_, overrides = {}, {}
    for arg in argv:
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}; flags look like --name=value.")
        name, _, value = arg[2:].partition("=")
        if name.startswith("config."):
            overrides[name.removeprefix("config.")] = value
        else:
            flags_[name] = value if "=" in arg else "true"
    return flags_, overrides


FLAGS = ("experiment", "regimes", "seeds", "population", "workdir", "overwrite")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        flags_, overrides = _split_flags(argv)
        unknown = sorted(set(flags_) - set(FLAGS))
        if unknown:
            raise ValueError(f"unknown flag --{unknown[0]}; valid flags: "
                             f"{', '.join('--' + f for f in FLAGS)}, --config.KEY=VALUE.")
        name = flags_.get("experiment", "prefix_sums")
        base = load_experiment(name)
        population = flags_.get("population", "false").lower() in ("true", "1", "")
        pop = base.get("population") or ConfigDict({"regimes": (), "seeds": (),
                                                    "overrides": ()})
        regimes = tuple(pop.regimes) if population else (base.regime,)
        seeds = tuple(pop.seeds) if population else (base.seed,)
        pop_overrides = (dict(o.split("=", 1) for o in pop.overrides) if population else {})
        if "regimes" in flags_:
            regimes = (tuple(REGIMES) if flags_["regimes"] == "all"
                       else tuple(r for r in flags_["regimes"].split(",") if r))
        if "seeds" in flags_:
            seeds = tuple(int(s) for s in flags_["seeds"].split(",") if s)
        all_overrides = {**pop_overrides, **overrides}
        model_list = model_configs(base, regimes, seeds, all_overrides)
        from nevis.upward.train import validate

        for c in model_list:
            validate(c)
    except (ValueError, configs.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(os.environ.get("NEVIS_OUTPUT_DIR", "runs"))
    default = out / f"upward-{base.experiment}{'-population' if population else ''}"
    workdir = Path(flags_.get("workdir") or default).expanduser().absolute()
    if flags_.get("overwrite", "false").lower() in ("true", "1", "") and workdir.exists():
        shutil.rmtree(workdir)
    header = {"kind": records.KIND, "experiment": base.experiment, "regimes": list(regimes),
              "seeds": list(seeds), "overrides": all_overrides, "base": base.to_dict()}
    print(f"{len(model_list)} model(s) of {base.experiment} into {workdir}", flush=True)
    try:
        summary = run_population(model_list, workdir, header,
                                 log=lambda m: print(m, flush=True))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    """One line per model: exact accuracy at 30/100/300/1000 iterations, AA, training time."""
    from nevis.results import format_table

    shown = ("30", "100", "300", "1000")
    rows = [["model", "size", *[f"exact@{b}" for b in shown], "AA@max", "cycles", "train s",
             "cpu s"]]
    for mid, m in summary["models"].items():
        exact, aa = m.get("exact_accuracy", {}), m.get("aa", {})
        last = max(aa, key=int) if aa else None
        rows.append([mid, str(m.get("largest_size", "-")),
                     *[f"{exact[b]:.3f}" if exact.get(b) is not None else "-" for b in shown],
                     f"{aa[last]:.4f}" if last and aa[last] is not None else "-",
                     f"{m.get('limit_cycle', float('nan')):.3f}",
                     f"{m.get('train_seconds', 0):.0f}",
                     f"{m.get('train_cpu_seconds') or 0:.0f}"])
    return format_table(rows)


if __name__ == "__main__":
    sys.exit(main())
