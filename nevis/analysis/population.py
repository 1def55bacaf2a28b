"""Populations of models: upward-generalisation runs and stream runs as one set of tables.

    from nevis.analysis.population import load_population
    pop = load_population(["runs/population/prefix_sums", "runs/population/stream"])
    pop.models        # one row per model: family, regime, seed, gradient, training time, ...
    pop.conditions    # one row per (model, condition, budget): accuracy, AA, residual, ...
    pop.examples()    # per-example AA and correctness (for ROC AUC)

An upward run (`python -m nevis.upward`, config.json kind "upward") holds many models of one
experiment; its conditions are test sizes and its budgets are test-time iterations. A stream
run (`python -m nevis.run`, a DEQ learner) is one model; its conditions are tasks (scored
split) and its budgets are multiples (1×, 2×, 4×) of the training solver budget. A directory
that is neither but holds such runs below it (a population folder) is expanded.

Also here: a permutation p-value for a correlation, correlation tables with bootstrap intervals
and that p-value, and the test-time gain table. Importing this module does not import jax.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nevis.analysis import stats
from nevis.analysis.runs import Run, _unique_labels, load_run, parse_run_dirs

UPWARD_KIND = "upward"
MODEL_COLUMNS = ["family", "model", "regime", "seed", "grad", "solver", "init", "budget_jitter",
                 "jacobian_weight", "train_budget", "train_seconds", "train_cpu_seconds",
                 "train_steps", "path"]
CONDITION_COLUMNS = ["family", "model", "regime", "seed", "grad", "condition", "size", "budget",
                     "budget_unit", "accuracy", "element_accuracy", "aa", "aa_gaussian",
                     "residual", "limit_cycle", "num_examples"]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def is_upward_run(path: str | Path) -> bool:
    """Whether `path` is a run directory written by `python -m nevis.upward`."""
    return _read_json(Path(path) / "config.json").get("kind") == UPWARD_KIND


@dataclass
class UpwardRun:
    """One upward-generalisation population directory (one experiment, many models)."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    records: list[dict[str, Any]] = field(repr=False)

    @property
    def family(self) -> str:
        return str(self.config.get("experiment") or self.path.name)

    @cached_property
    def models(self) -> pd.DataFrame:
        rows = []
        for r in self.records:
            if r["event"] != "train":
                continue
            rows.append({
                "family": self.family, "model": r["model"], "regime": r.get("regime"),
                "seed": r.get("seed"), "grad": r.get("grad"), "solver": r.get("solver"),
                "init": r.get("init"), "budget_jitter": r.get("budget_jitter"),
                "jacobian_weight": r.get("jacobian_weight"),
                "train_budget": r.get("train_budget"), "train_seconds": r.get("seconds"),
                "train_cpu_seconds": r.get("cpu_seconds"),
                "train_steps": (r.get("info") or {}).get("steps_run"), "path": str(self.path),
            })
        return pd.DataFrame(rows, columns=MODEL_COLUMNS)

    @cached_property
    def conditions(self) -> pd.DataFrame:
        rows = []
        for r in self.records:
            if r["event"] != "evaluate":
                continue
            m = r["metrics"]
            rows.append({
                "family": self.family, "model": r["model"], "regime": r.get("regime"),
                "seed": r.get("seed"), "grad": r.get("grad"),
                "condition": f"size {r['size']}", "size": r["size"], "budget": r["budget"],
                "budget_unit": "iterations", "accuracy": m.get("exact_accuracy"),
                "element_accuracy": m.get("element_accuracy"), "aa": m.get("aa"),
                "aa_gaussian": m.get("aa_gaussian"), "residual": m.get("residual_median"),
                "limit_cycle": m.get("limit_cycle"), "num_examples": m.get("num_examples"),
            })
        df = pd.DataFrame(rows, columns=CONDITION_COLUMNS)
        return df.astype({c: float for c in ("accuracy", "element_accuracy", "aa", "aa_gaussian",
                                             "residual", "limit_cycle")})

    def arrays(self, model: str, size: int) -> dict[str, np.ndarray]:
        """The per-example arrays of one model at one test size."""
        record = next((r for r in self.records if r["event"] == "evaluate"
                       and r["model"] == model and r["size"] == size), None)
        if record is None:
            raise KeyError(f"No evaluation of model {model!r} at size {size} in {self.path}.")
        with np.load(self.path / record["per_example_file"]) as data:
            return {k: data[k] for k in data.files}

    def examples(self, budget: int | None = None) -> pd.DataFrame:
        """Per-example rows with AA: model, condition, budget, aa, aa_gaussian, correct.

        `budget`: one test-time budget (default: each model's largest).
        """
        frames = []
        pairs = {(r["model"], r["size"]) for r in self.records if r["event"] == "evaluate"}
        for model, size in sorted(pairs):
            a = self.arrays(model, size)
            budgets = list(a["budgets"])
            i = len(budgets) - 1 if budget is None else budgets.index(budget)
            n = a["aa"].shape[1] if "aa" in a else 0
            if not n:
                continue
            frames.append(pd.DataFrame({
                "family": self.family, "model": model, "condition": f"size {size}",
                "size": size, "budget": budgets[i], "index": a["index"][:n],
                "aa": a["aa"][i], "aa_gaussian": a.get("aa_gaussian", np.full((len(budgets), n),
                                                                             np.nan))[i],
                "correct": a["exact"][i, :n].astype(bool),
            }))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_upward(path: str | Path) -> UpwardRun:
    path = Path(path).expanduser()
    if not (path / "events.jsonl").exists() and not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not an upward run directory (no config.json).")
    events = path / "events.jsonl"
    records = ([json.loads(line) for line in events.read_text().splitlines() if line.strip()]
               if events.exists() else [])
    return UpwardRun(path, _read_json(path / "config.json"), _read_json(path / "summary.json"),
                     records)


def _stream_model_row(run: Run) -> dict[str, Any]:
    learner = run.config.get("learner", {})
    solver = learner.get("solver", {})
    return {
        "family": "stream", "model": run.label, "regime": run.label, "seed": learner.get("seed"),
        "grad": solver.get("grad"), "solver": solver.get("name"), "init": solver.get("init"),
        "budget_jitter": solver.get("budget_jitter"),
        "jacobian_weight": learner.get("jacobian_reg", {}).get("weight"),
        "train_budget": solver.get("max_steps"),
        "train_seconds": run.summary.get("timing", {}).get("seconds"),
        "train_cpu_seconds": None, "train_steps": None,
        "path": str(run.path),
    }


def _stream_conditions(run: Run) -> pd.DataFrame:
    table = stats.budget_table(run)
    tasks = run.scored_tasks
    if table.empty or tasks.empty:
        return pd.DataFrame(columns=CONDITION_COLUMNS)
    table = table[table["event_index"].isin(tasks["event_index"])]
    extra = tasks.set_index("event_index")
    repeated = set(tasks["task"][tasks["task"].duplicated()])
    rows = []
    for _, t in table.iterrows():
        e = extra.loc[t["event_index"]]
        # A task met again later in the stream is another condition: name it by its event.
        condition = (f"{t['task']} (event {t['event_index']})" if t["task"] in repeated
                     else t["task"])
        rows.append({
            "family": "stream", "model": run.label, "regime": run.label,
            "seed": run.config.get("learner", {}).get("seed"),
            "grad": run.config.get("learner", {}).get("solver", {}).get("grad"),
            "condition": condition, "size": np.nan, "budget": int(t["budget"]),
            "budget_unit": "× training budget", "accuracy": t["accuracy"],
            "element_accuracy": np.nan, "aa": t["aa"], "aa_gaussian": np.nan,
            "residual": e.get("scores/residual", np.nan) if t["budget"] == 1 else np.nan,
            "limit_cycle": e.get("scores/limit_cycle", np.nan) if t["budget"] == 1 else np.nan,
            "num_examples": e.get("num_examples", np.nan),
        })
    return pd.DataFrame(rows, columns=CONDITION_COLUMNS)


def _stream_examples(run: Run) -> pd.DataFrame:
    ex = run.per_example(kind="single_label")
    if ex.empty or "aa" not in ex:
        return pd.DataFrame()
    scored = ex[ex["split"] == run.split] if run.split else ex
    events = scored.groupby("task")["event_index"].transform("nunique")
    condition = scored["task"].where(
        events == 1, scored["task"] + " (event " + scored["event_index"].astype(str) + ")")
    return pd.DataFrame({"family": "stream", "model": run.label, "condition": condition,
                         "size": np.nan, "budget": 1, "index": scored["index"],
                         "aa": scored["aa"], "aa_gaussian": np.nan,
                         "correct": scored["correct"].astype(bool)})


def _is_run(path: Path) -> bool:
    return (path / "events.jsonl").exists() or is_upward_run(path)


def _runs_below(path: Path, depth: int) -> list[Path]:
    found = []
    for child in sorted(c for c in path.iterdir() if c.is_dir()):
        if _is_run(child):
            found.append(child)
        elif depth > 1:
            found.extend(_runs_below(child, depth - 1))
    return found


def population_run_dirs(paths: str | Path | Iterable[str | Path], depth: int = 3) -> list[Path]:
    """Run directories in `paths`; a folder that is not a run directory is replaced by the
    run directories below it (up to `depth` levels, sorted, not looking inside runs)."""
    out = []
    for p in parse_run_dirs(paths):
        if _is_run(p):
            out.append(p)
            continue
        children = _runs_below(p, depth) if p.is_dir() else []
        if not children:
            raise FileNotFoundError(f"{p} holds no run directory (no events.jsonl or upward "
                                    f"config.json in it or up to {depth} levels below).")
        out.extend(children)
    return out


@dataclass
class Population:
    """Upward runs and stream runs, with tables that stack them."""

    upward: list[UpwardRun]
    streams: list[Run]

    @cached_property
    def models(self) -> pd.DataFrame:
        frames = [u.models for u in self.upward]
        if self.streams:
            frames.append(pd.DataFrame([_stream_model_row(r) for r in self.streams],
                                       columns=MODEL_COLUMNS))
        frames = [f for f in frames if not f.empty]
        return (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame(columns=MODEL_COLUMNS))

    @cached_property
    def conditions(self) -> pd.DataFrame:
        frames = [u.conditions for u in self.upward] + [_stream_conditions(r)
                                                        for r in self.streams if r.has_aa]
        frames = [f for f in frames if not f.empty]
        return (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame(columns=CONDITION_COLUMNS))

    def examples(self, budget: int | None = None) -> pd.DataFrame:
        """Per-example AA and correctness of every model (stream: the 1× budget)."""
        frames = [u.examples(budget) for u in self.upward]
        frames += [_stream_examples(r) for r in self.streams if r.has_aa]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(self.models["family"]))


def load_population(paths: str | Path | Iterable[str | Path]) -> Population:
    """Upward and stream run directories (or folders of them) as one population."""
    upward, streams = [], []
    for p in population_run_dirs(paths):
        if is_upward_run(p):
            upward.append(load_upward(p))
        else:
            streams.append(load_run(p, label=p.name))
    _unique_labels(streams)
    return Population(upward, streams)


def permutation_pvalue(x: Sequence[float], y: Sequence[float], method: str = "spearman", *,
                       num_permutations: int = 5000, seed: int = 0) -> float:
    """Two-sided permutation p-value of a Pearson or Spearman correlation.

    The fraction of random pairings of y with x whose |r| reaches the observed |r| (with the
    observed pairing counted, so p >= 1 / (num_permutations + 1)). NaN below three pairs.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return np.nan
    observed = stats._corr(x, y, method)
    if not np.isfinite(observed):
        return np.nan
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((num_permutations, len(y))), axis=1)
    null = stats._corr(np.broadcast_to(x, perms.shape), y[perms], method)
    hits = np.sum(np.abs(null) >= abs(observed) - 1e-12)
    return float((hits + 1) / (num_permutations + 1))


def correlation_summary(x: Sequence[float], y: Sequence[float], **kwargs) -> pd.DataFrame:
    """Pearson and Spearman r, bootstrap 95% interval and permutation p-value."""
    rows = []
    for method in ("pearson", "spearman"):
        row = stats.correlation(x, y, method, **kwargs)
        row["p_permutation"] = permutation_pvalue(x, y, method)
        rows.append(row)
    return pd.DataFrame(rows)


def gain_table(conditions: pd.DataFrame, low: int | None = None,
               high: int | None = None) -> pd.DataFrame:
    """Per (model, condition): accuracy at budget `high` minus at `low`, with AA at `high`.

    Defaults: the smallest and the largest budget evaluated (`training_gain_table` starts at
    each model's training budget instead). A path-independent model should gain (or keep)
    accuracy with more iterations; a path-dependent one stalls or loses it.
    """
    rows = []
    for (family, model, condition), g in conditions.groupby(["family", "model", "condition"],
                                                            sort=False):
        g = g.set_index("budget").sort_index()
        budgets = list(g.index)
        lo = low if low is not None else budgets[0]
        hi = high if high is not None else budgets[-1]
        if lo not in g.index or hi not in g.index or lo >= hi:
            continue
        first = g.iloc[0]
        rows.append({"family": family, "model": model, "regime": first["regime"],
                     "grad": first["grad"], "condition": condition, "size": first["size"],
                     "low": lo, "high": hi, "accuracy_low": g.loc[lo, "accuracy"],
                     "accuracy_high": g.loc[hi, "accuracy"],
                     "gain": g.loc[hi, "accuracy"] - g.loc[lo, "accuracy"],
                     "aa": g.loc[hi, "aa"], "aa_low": g.loc[lo, "aa"]})
    df = pd.DataFrame(rows, columns=["family", "model", "regime", "grad", "condition", "size",
                                     "low", "high", "accuracy_low", "accuracy_high", "gain",
                                     "aa", "aa_low"])
    numeric = ["size", "accuracy_low", "accuracy_high", "gain", "aa", "aa_low"]
    return df.astype({c: float for c in numeric}).astype({"low": int, "high": int})


def with_training_budget(pop: Population) -> pd.DataFrame:
    """`pop.conditions` with the model's training budget as a column (`train_budget`)."""
    budgets = pop.models.set_index(["family", "model"])["train_budget"]
    df = pop.conditions.copy()
    key = pd.MultiIndex.from_frame(df[["family", "model"]])
    df["train_budget"] = budgets.reindex(key).to_numpy()
    return df


def training_gain_table(pop: Population, high: int | None = None) -> pd.DataFrame:
    """`gain_table` with `low` = each upward model's training budget (stream: 1×)."""
    df = with_training_budget(pop)
    frames = []
    for _, g in df.groupby(["family", "model"], sort=False):
        tb = g["train_budget"].iloc[0]
        budgets = sorted(g["budget"].unique())
        if g["budget_unit"].iloc[0] == "iterations" and pd.notna(tb):
            low = max((b for b in budgets if b <= tb), default=budgets[0])
        else:
            low = budgets[0]
        frames.append(gain_table(g, low=low, high=high))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else gain_table(df.iloc[:0])


def model_table(pop: Population, budgets: Sequence[int] = (30, 100, 300, 1000),
                condition: str = "largest") -> pd.DataFrame:
    """One row per model: regime, seed, gradient, training time, and at one condition (the
    largest test size by default; for stream models the mean over tasks) the AA and accuracy
    at each of `budgets` (stream models: at 1×, 2×, 4×)."""
    rows = []
    cond = pop.conditions
    for _, m in pop.models.iterrows():
        g = cond[(cond["family"] == m["family"]) & (cond["model"] == m["model"])]
        row = {k: m[k] for k in ("family", "model", "regime", "seed", "grad", "solver", "init",
                                 "budget_jitter", "jacobian_weight", "train_seconds",
                                 "train_cpu_seconds")}
        if g.empty:
            rows.append(row)
            continue
        if g["budget_unit"].iloc[0] == "iterations":
            size = g["size"].max() if condition == "largest" else condition
            g = g[g["size"] == size]
            row["condition"] = f"size {int(size)}"
            by_budget = g.set_index("budget")
            for b in budgets:
                row[f"acc@{b}"] = by_budget["accuracy"].get(b, np.nan)
            last = by_budget.index.max()
            row["aa"] = by_budget.loc[last, "aa"]
            row["aa_gaussian"] = by_budget.loc[last, "aa_gaussian"]
            row["residual"] = by_budget.loc[last, "residual"]
            row["limit_cycle"] = by_budget.loc[last, "limit_cycle"]
        else:
            mean = g.groupby("budget")[["accuracy", "aa"]].mean()
            row["condition"] = "mean over tasks"
            for b in mean.index:
                row[f"acc@{b}x"] = mean.loc[b, "accuracy"]
            row["aa"] = mean["aa"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)
