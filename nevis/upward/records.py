"""The run directory of an upward-generalisation population (one experiment, many models).

Same conventions as stream runs (`nevis.results`), so `nevis.analysis` reads both:

    runs/upward-prefix_sums/
      config.json        kind "upward", the experiment's base config, regimes, seeds, overrides
      summary.json       per model: regime, seed, gradient, AA and exact accuracy per budget on
                         the largest size, training wall and CPU time; `complete`; timing
      events.jsonl       per model one "train" record, then one "evaluate" record per
                         (test size, budget) with its metrics
      predictions/       per (model, size): <model>_size<n>.npz with per-example arrays
                         (budgets [K], exact/element/residual [K, N], aa/aa_gaussian [K, N_aa],
                         limit_cycle [N], index [N])
      models/<model>/    config.json (resolved), train.json, params.npz (for resuming)

A model's records are written once it is trained and evaluated on every size, so a killed
population resumes at the first unfinished model (retraining it unless its parameters were
saved).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from nevis import results
from nevis.upward.evaluate import SizeResult

KIND = "upward"


def model_id(config: ConfigDict) -> str:
    return f"{config.regime}-s{config.seed}"


def describe(config: ConfigDict) -> dict[str, Any]:
    """The columns that identify a model and its intervention in every record."""
    s = config.solver
    return {
        "model": model_id(config), "experiment": config.get("experiment", config.task),
        "task": config.task, "regime": config.regime, "seed": int(config.seed),
        "grad": s.grad, "solver": s.name, "init": s.init,
        "budget_jitter": int(s.budget_jitter), "train_budget": int(s.max_steps),
        "jacobian_weight": float(config.jacobian_reg.weight),
        "train_size": int(config.train_size), "width": int(config.model.get("width", 0)),
    }


def read_events(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def completed_models(workdir: Path) -> set[str]:
    return {r["model"] for r in read_events(workdir) if r["event"] == "train"}


def save_params(path: Path, params) -> None:
    leaves = [np.asarray(x) for x in jax.tree.leaves(params)]
    results.save_per_example(path, {f"leaf_{i:04d}": a for i, a in enumerate(leaves)})


def load_params(path: Path, like):
    with np.load(path) as data:
        leaves = [data[f"leaf_{i:04d}"] for i in range(len(data.files))]
    treedef = jax.tree.structure(like)
    if treedef.num_leaves != len(leaves):
        raise ValueError(f"{path} holds {len(leaves)} arrays, the model has "
                         f"{treedef.num_leaves}; delete it to retrain.")
    return jax.tree.unflatten(treedef, leaves)


def model_records(config: ConfigDict, train_info: dict[str, Any],
                  sizes: list[SizeResult], workdir: Path) -> list[dict[str, Any]]:
    """The train record and one evaluate record per (size, budget); writes the .npz files."""
    base = describe(config)
    (workdir / "predictions").mkdir(parents=True, exist_ok=True)
    records = [{
        **base, "event": "train", "seconds": train_info["seconds"],
        "cpu_seconds": train_info.get("cpu_seconds"),
        "info": {k: v for k, v in train_info.items() if k != "curve"},
        "resources": {"parameter_count": train_info.get("parameter_count")},
    }]
    for res in sizes:
        name = f"predictions/{base['model']}_size{res.size}.npz"
        results.save_per_example(workdir / name, res.arrays)
        for m in res.metrics:
            records.append({**base, "event": "evaluate", "size": res.size,
                            "budget": m["budget"], "metrics": m, "per_example_file": name,
                            "seconds": res.seconds})
    return records


def write_summary(workdir: Path, records: list[dict[str, Any]], complete: bool,
                  seconds: float) -> dict[str, Any]:
    """summary.json: one entry per model, read at its largest test size."""
    models: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["event"] == "train":
            keep = ("regime", "seed", "grad", "solver", "init", "budget_jitter",
                    "jacobian_weight", "train_budget")
            models[r["model"]] = {**{k: r[k] for k in keep}, "train_seconds": r["seconds"],
                                  "train_cpu_seconds": r.get("cpu_seconds"),
                                  "train_steps": r["info"].get("steps_run")}
    for r in records:
        if r["event"] != "evaluate":
            continue
        m = models[r["model"]]
        if r["size"] >= m.get("largest_size", 0):
            if r["size"] > m.get("largest_size", 0):
                m["largest_size"], m["exact_accuracy"], m["aa"] = r["size"], {}, {}
            m["exact_accuracy"][str(r["budget"])] = r["metrics"]["exact_accuracy"]
            m["aa"][str(r["budget"])] = r["metrics"].get("aa")
            if "limit_cycle" in r["metrics"]:
                m["limit_cycle"] = r["metrics"]["limit_cycle"]
    summary = {"kind": KIND, "complete": complete, "num_models": len(models),
               "models": models, "timing": {"seconds": seconds}}
    results.write_json(workdir / "summary.json", summary)
    return summary
