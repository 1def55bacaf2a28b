"""A tiny population end to end: the upward run directory, resuming, the loader, the
statistics, and `analysis/population.ipynb` executed on it (with a stream run beside it).

The population is four 8-bit prefix-sum models (two regimes × two seeds) trained for a few
dozen steps, so some are right and some are not; the stream run is the synthetic DEQ run of
tests/test_analysis.py, whose numbers are known.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from test_analysis import write_synthetic_run

from nevis.analysis.population import (
    correlation_summary,
    gain_table,
    load_population,
    model_table,
    permutation_pvalue,
    training_gain_table,
)
from nevis.analysis.report import run_notebooks
from nevis.upward import records, run, train

REGIMES, SEEDS = ("unrolled_mixed", "unrolled_fixed"), (0, 1)
BUDGETS = (1, 3, 10, 30)
SIZES = (8, 16)
NUM_EXAMPLES, AA_EXAMPLES = 40, 20


def tiny_population_configs():
    base = run.load_experiment("prefix_sums")
    overrides = {
        "train_size": 8, "steps": 60, "max_seconds": 0.0, "log_every": 30,
        "model.width": 8, "model.head_widths": (8,), "solver.max_steps": 8,
        "solver.backward_max_steps": 8, "optimizer.learning_rate": 3e-3,
        "eval.sizes": SIZES, "eval.num_examples": NUM_EXAMPLES, "eval.batch_size": 20,
        "eval.aa_examples": AA_EXAMPLES, "eval.budgets": BUDGETS,
    }
    header = {"kind": "upward", "experiment": "prefix_sums", "regimes": list(REGIMES),
              "seeds": list(SEEDS), "overrides": {k: str(v) for k, v in overrides.items()}}
    return run.model_configs(base, REGIMES, SEEDS, overrides), header


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("population")
    configs, header = tiny_population_configs()
    run.run_population(configs, root / "prefix_sums", header, log=None)
    stream = write_synthetic_run(root / "stream" / "deq_default")
    return {"root": root, "upward": root / "prefix_sums", "stream": stream}


def test_upward_run_directory(population):
    workdir = population["upward"]
    config = json.loads((workdir / "config.json").read_text())
    assert config["kind"] == "upward" and config["regimes"] == list(REGIMES)
    events = records.read_events(workdir)
    trains = [r for r in events if r["event"] == "train"]
    evals = [r for r in events if r["event"] == "evaluate"]
    assert [r["model"] for r in trains] == [f"{r}-s{s}" for r in REGIMES for s in SEEDS]
    assert len(evals) == len(trains) * len(SIZES) * len(BUDGETS)
    assert {"exact_accuracy", "element_accuracy", "aa", "aa_gaussian", "residual_median",
            "limit_cycle"} <= set(evals[-1]["metrics"])
    for r in evals:  # each record's means are those of its budget's per-example outcomes
        with np.load(workdir / r["per_example_file"]) as a:
            assert a["exact"].shape == (len(BUDGETS), NUM_EXAMPLES)
            assert a["aa"].shape == a["aa_gaussian"].shape == (len(BUDGETS), AA_EXAMPLES)
            assert a["limit_cycle"].shape == (NUM_EXAMPLES,)
            i = list(a["budgets"]).index(r["budget"])
            m = r["metrics"]
            assert a["exact"][i].mean() == pytest.approx(m["exact_accuracy"])
            assert a["element"][i].mean() == pytest.approx(m["element_accuracy"])
            assert a["aa"][i].mean() == pytest.approx(m["aa"])
            assert np.median(a["residual"][i]) == pytest.approx(m["residual_median"])
    element = [r["metrics"]["element_accuracy"] for r in evals]
    assert len(set(element)) > 1  # the budgets differ, so a mix-up would show
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["complete"] and summary["num_models"] == 4
    m = summary["models"]["unrolled_fixed-s1"]
    assert m["largest_size"] == 16 and set(m["exact_accuracy"]) == {str(b) for b in BUDGETS}
    assert m["train_seconds"] > 0 and m["init"] == "zeros"
    assert (workdir / "models" / "unrolled_fixed-s1" / "params.npz").exists()


def test_a_finished_population_is_not_retrained(population, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(train, "train", fail)
    configs, header = tiny_population_configs()
    before = (population["upward"] / "events.jsonl").read_text()
    run.run_population(configs, population["upward"], header, log=None)
    assert (population["upward"] / "events.jsonl").read_text() == before
    with pytest.raises(ValueError, match="different config"):
        run.run_population(configs, population["upward"], {**header, "seeds": [5]}, log=None)


def test_a_model_killed_during_evaluation_is_evaluated_from_its_saved_parameters(
        population, tmp_path, monkeypatch):
    """A copy of the population without the last model's records (as if killed while
    evaluating it) finishes that model from models/<id>/params.npz, with the same numbers."""
    import shutil

    workdir = tmp_path / "prefix_sums"
    shutil.copytree(population["upward"], workdir)
    events = records.read_events(workdir)
    last = events[-1]["model"]
    kept = [r for r in events if r["model"] != last]
    (workdir / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("retrained"))
    configs, header = tiny_population_configs()
    run.run_population(configs, workdir, header, log=None)
    again = records.read_events(workdir)
    assert [r["model"] for r in again] == [r["model"] for r in events]
    for a, b in zip(again, events, strict=True):
        assert a.get("metrics") == b.get("metrics")


def test_loader_stacks_upward_and_stream_models(population):
    pop = load_population([population["root"] / "prefix_sums", population["root"] / "stream"])
    assert pop.families == ["prefix_sums", "stream"]
    models = pop.models
    assert len(models) == 5 and set(models["regime"]) == {*REGIMES, "deq_default"}
    cond = pop.conditions
    upward = cond[cond["family"] == "prefix_sums"]
    assert len(upward) == 4 * len(SIZES) * len(BUDGETS)
    assert set(upward["condition"]) == {"size 8", "size 16"}
    assert upward["budget_unit"].eq("iterations").all()
    stream = cond[cond["family"] == "stream"]
    assert set(stream["budget"]) == {1, 2, 4} and stream["aa"].notna().all()
    ex = pop.examples()
    assert len(ex[ex["family"] == "prefix_sums"]) == 4 * len(SIZES) * AA_EXAMPLES
    assert ex["correct"].dtype == bool
    # A folder of run directories is expanded, and gives the same tables.
    again = load_population(population["root"])
    pd.testing.assert_frame_equal(again.conditions, cond)

    table = model_table(pop)
    row = table[table["model"] == "unrolled_mixed-s0"].iloc[0]
    assert row["condition"] == "size 16" and {"acc@30", "aa", "train_seconds"} <= set(row.index)
    saved = json.loads((population["upward"] / "summary.json").read_text())
    assert row["acc@30"] == pytest.approx(
        saved["models"]["unrolled_mixed-s0"]["exact_accuracy"]["30"])
    gains = training_gain_table(pop)
    up = gains[gains["family"] == "prefix_sums"]
    assert (up["low"] == 3).all() and (up["high"] == 30).all()  # training budget 8 -> 3
    np.testing.assert_allclose(up["gain"], up["accuracy_high"] - up["accuracy_low"])


def test_gain_table_and_correlation_statistics():
    df = pd.DataFrame({
        "family": "f", "model": np.repeat(["a", "b", "c", "d"], 2), "regime": "r",
        "grad": "g", "condition": "size 8", "size": 8, "budget": [1, 10] * 4,
        "budget_unit": "iterations", "accuracy": [0.1, 0.9, 0.2, 0.5, 0.3, 0.3, 0.4, 0.1],
        "aa": [0.5, 1.0, 0.5, 0.8, 0.5, 0.5, 0.5, 0.2],
    })
    gains = gain_table(df)
    np.testing.assert_allclose(gains["gain"], [0.8, 0.3, 0.0, -0.3])
    np.testing.assert_allclose(gains["aa"], [1.0, 0.8, 0.5, 0.2])
    x = np.arange(12.0)
    assert permutation_pvalue(x, x) < 1e-3
    assert permutation_pvalue(x, -x, "pearson") < 1e-3  # two-sided
    noise = np.random.default_rng(0).normal(size=12)
    assert permutation_pvalue(x, noise) > 0.05
    assert np.isnan(permutation_pvalue([1, 2], [1, 2]))
    table = correlation_summary(x, x ** 2)
    assert list(table["method"]) == ["pearson", "spearman"]
    assert table.loc[1, "r"] == pytest.approx(1.0) and table.loc[1, "p_permutation"] < 1e-3


def test_population_notebook_runs_and_writes_figures(population, tmp_path):
    dirs = [population["upward"], population["stream"]]
    report = run_notebooks(dirs, tmp_path, notebooks=["population"], timeout=600)
    names = {p.stem for p in report.figures}
    assert {"population_aa_accuracy", "population_correlation_by_budget", "population_gain",
            "population_iterations_prefix_sums", "population_iterations_stream",
            "population_examples", "population_aa_modes"} <= names, names
    tables = {p.stem for p in tmp_path.glob("*.csv")}
    assert {"population_models", "population_aa_accuracy_correlation",
            "population_gain_correlation", "population_examples_auc"} <= tables
    models = pd.read_csv(tmp_path / "population_models.csv")
    assert len(models) == 5
    corr = pd.read_csv(tmp_path / "population_aa_accuracy_correlation.csv")
    assert {"r", "low", "high", "p_permutation"} <= set(corr.columns)


def test_committed_population_notebook_has_no_outputs():
    nb = nbformat.read(REPO / "analysis" / "population.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
