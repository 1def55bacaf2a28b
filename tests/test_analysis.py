"""The analysis layer: run tables, statistics, and the notebooks executed headless.

AA analyses are checked on a synthetic equilibrium run written here in the results format,
built so that the answers are known (exact log-linear error, AA that separates correct from
wrong examples); the notebooks also run on a real tiny run of `python -m nevis.run` (the DEQ
learner when `experiments/deq.py` exists, else the independent one).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import REPO, run_cli, tiny_run_args
from scipy import stats as scipy_stats

from nevis.analysis import load_all, load_run, load_runs, parse_run_dirs, stats
from nevis.analysis.report import NOTEBOOKS, NotebookError, main, run_notebooks

# The synthetic stream: (task, kind, mean AA); the dataset "t0" comes back later in the stream.
STREAM = [("t0", "single_label", 0.2), ("t1", "single_label", 0.4), ("t2", "single_label", 0.6),
          ("t0", "single_label", 0.7), ("t3", "single_label", 0.8), ("m4", "multi_label", 0.9)]
SLOPE, INTERCEPT = -3.0, 0.5  # error = exp(INTERCEPT + SLOPE * aa), exactly
FINAL_ERROR_DELTA = 0.05  # final re-evaluation error = error after last training + this
NUM_EXAMPLES = 80
TRAIN_FLOPS, PREDICT_FLOPS = 1e9, 1e7
HAS_DEQ = (REPO / "experiments" / "deq.py").exists()
# A one-task DEQ run small enough to compile and train in about 25 s on two busy cores.
TINY_DEQ = (
    "--learner=deq", "--config.stream.tasks=uci_digits", "--config.learner.model.width=16",
    "--config.learner.deq.max_steps=4", "--config.learner.deq.b_max_steps=4",
    "--config.learner.budget_jitter=1", "--config.learner.min_steps=20",
    "--config.learner.max_steps=20", "--config.learner.eval_every=20",
    "--config.learner.eval_batch_size=128",
)
PI_FIGURES = ["path_independence_tasks", "path_independence_examples", "path_independence_budget"]
STREAM_FIGURES = ["stream_error_per_task", "stream_cumulative_flops", "stream_error_vs_compute",
                  "stream_forgetting"]


def task_error(aa: float) -> float:
    return float(np.exp(INTERCEPT + SLOPE * aa))


def _predict_record(index: int, task: str, kind: str, aa: float, error: float, final: bool,
                    rng: np.random.Generator, workdir: Path, with_aa: bool) -> dict:
    """A DEQ-style prediction event whose per-example AA separates correct from wrong.

    Without AA (`with_aa=False`) it looks like a baseline learner's: no scores, no budgets.
    """
    example_aa = np.sort(rng.uniform(aa - 0.1, aa + 0.1, NUM_EXAMPLES))
    arrays = {"index": rng.permutation(NUM_EXAMPLES), "aa": example_aa,
              "aa_2x": example_aa + 0.05, "aa_4x": example_aa + 0.08,
              "residual": rng.uniform(0, 1e-3, NUM_EXAMPLES),
              "limit_cycle": np.zeros(NUM_EXAMPLES)}
    metrics = {"error": error, "num_examples": NUM_EXAMPLES, "scores/aa": aa,
               "scores/aa_2x": aa + 0.05, "scores/aa_4x": aa + 0.08,
               "scores/residual": 1e-4, "scores/limit_cycle": 0.0}
    for budget, factor in (("budget_2x", 0.9), ("budget_4x", 0.8)):
        metrics[f"{budget}/error"] = error * factor
    if kind == "single_label":
        num_correct = round((1 - error) * NUM_EXAMPLES)
        correct = np.arange(NUM_EXAMPLES) >= NUM_EXAMPLES - num_correct  # the highest AA
        label = rng.integers(0, 10, NUM_EXAMPLES)
        arrays.update(label=label, predicted=np.where(correct, label, (label + 1) % 10),
                      correct=correct, **{"budget_2x/correct": correct,
                                          "budget_4x/correct": correct | (example_aa > aa)})
        metrics.update(top_one_accuracy=1 - error, top_one_correct=num_correct)
        for budget in ("budget_2x", "budget_4x"):
            metrics[f"{budget}/top_one_accuracy"] = 1 - metrics[f"{budget}/error"]
    else:
        arrays.update(labels=rng.integers(0, 2, (NUM_EXAMPLES, 4)).astype(np.float32),
                      scores=rng.uniform(0, 1, (NUM_EXAMPLES, 4)).astype(np.float32))
        metrics.update(mean_average_precision=1 - error, classes_scored=4)
    if not with_aa:
        arrays = {k: v for k, v in arrays.items() if not k.startswith(("aa", "budget_"))
                  and k not in ("residual", "limit_cycle")}
        metrics = {k: v for k, v in metrics.items() if not k.startswith(("scores/", "budget_"))}
    name = f"predictions/event_{index:04d}_{task}_dev_test.npz"
    np.savez_compressed(workdir / name, **arrays)
    return {"event": "predict", "split": "dev_test", "final": final, "metrics": metrics,
            "per_example_file": name,
            "resources": {"inference_flops": PREDICT_FLOPS, "total_flops": PREDICT_FLOPS,
                          "train_flops": 0.0}}


def write_synthetic_run(workdir: Path, learner: str = "deq", seed: int = 0,
                        with_aa: bool = True) -> Path:
    """A finished run directory in the documented results format, with made-up AA scores."""
    rng = np.random.default_rng(seed)
    (workdir / "predictions").mkdir(parents=True)
    records, train_flops = [], 0.0
    latest_error: dict[str, float] = {}

    def add(record: dict, task: str, kind: str) -> None:
        records.append({"event_index": len(records), "task": task, "name": task.upper(),
                        "year": 2000 + len(records), "kind": kind, "split": None,
                        "final": False, "status": "ok", "cumulative_train_flops": train_flops,
                        "seconds": 0.1, **record})

    for task, kind, aa in STREAM:
        train_flops += TRAIN_FLOPS
        add({"event": "train", "info": {"forward_steps_mean": 10.0},
             "resources": {"train_flops": TRAIN_FLOPS, "total_flops": TRAIN_FLOPS}}, task, kind)
        latest_error[task] = task_error(aa)
        add(_predict_record(len(records), task, kind, aa, task_error(aa), False, rng, workdir,
                                    with_aa),
            task, kind)
    for task, kind, aa in {t[0]: t for t in STREAM}.values():
        error = latest_error[task] + FINAL_ERROR_DELTA
        add(_predict_record(len(records), task, kind, aa, error, True, rng, workdir, with_aa),
            task, kind)
    stream_errors = [task_error(aa) for _, _, aa in STREAM]
    summary = {
        "stream": "synthetic", "complete": True, "events_completed": len(records),
        "events_total": len(records), "failed_events": [], "diverged_tasks": {},
        "splits": {"dev_test": {
            "num_events": len(STREAM), "stream_error": float(np.mean(stream_errors)),
            "unique_task_error": float(np.mean(list(latest_error.values()))),
            "final_stream_error": float(np.mean(list(latest_error.values())))
            + FINAL_ERROR_DELTA,
            "average_forgetting": FINAL_ERROR_DELTA,
            "forgetting": {t: FINAL_ERROR_DELTA for t in latest_error}}},
        "resources": {"train_flops": train_flops, "total_flops": train_flops
                      + PREDICT_FLOPS * (len(records) - len(STREAM)),
                      "peak_parameter_count": 1000},
        "timing": {"seconds": 1.0},
    }
    if with_aa:
        summary["diagnostics"] = {"aa": {"mean": 0.6, "pearson_with_accuracy": 0.9}}
    config = {"experiment": learner, "learner": {"name": learner},
              "stream": {"name": "synthetic"}}
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "summary.json").write_text(json.dumps(summary))
    (workdir / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return workdir


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("synthetic") / "deq-synthetic")


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> Path:
    """A synthetic run of a learner without AA scores."""
    return write_synthetic_run(tmp_path_factory.mktemp("synthetic") / "finetune-synthetic",
                               learner="finetune", with_aa=False)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, data_dir) -> Path:
    """A tiny run of `python -m nevis.run`: DEQ if its config exists, else independent."""
    if HAS_DEQ:
        workdir = tmp_path_factory.mktemp("analysis") / "deq-tiny"
        run_cli(*tiny_run_args(workdir, data_dir, *TINY_DEQ))
    else:
        workdir = tmp_path_factory.mktemp("analysis") / "independent-tiny"
        run_cli(*tiny_run_args(workdir, data_dir))
    return workdir


def test_import_is_light():
    code = ("import sys, nevis.analysis; "
            "print(sorted(m for m in ('jax', 'scipy', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_parse_run_dirs():
    assert parse_run_dirs("a, b,") == [Path("a"), Path("b")]
    assert parse_run_dirs(["a", Path("b")]) == [Path("a"), Path("b")]
    with pytest.raises(ValueError):
        parse_run_dirs("")


def test_events_table(synthetic_run):
    run = load_run(synthetic_run)
    ev = run.events
    assert len(ev) == 2 * len(STREAM) + 5 and list(ev["event_index"]) == list(range(len(ev)))
    assert {"error", "scores/aa", "budget_2x/error", "resources/total_flops",
            "info/forward_steps_mean"} <= set(ev.columns)
    assert ev["cumulative_total_flops"].iloc[-1] == pytest.approx(
        run.summary["resources"]["total_flops"])
    assert run.learner == "deq" and run.split == "dev_test" and run.has_aa


def test_tasks_join_final_error_and_forgetting(synthetic_run):
    tasks = load_run(synthetic_run).tasks
    assert list(tasks["task"]) == [t for t, _, _ in STREAM] and not tasks["final"].any()
    assert list(tasks["position"]) == list(range(len(STREAM)))
    np.testing.assert_allclose(tasks["error"], [task_error(aa) for _, _, aa in STREAM])
    np.testing.assert_allclose(tasks["accuracy"], 1 - tasks["error"])
    np.testing.assert_allclose(tasks["aa"], [aa for _, _, aa in STREAM])
    t0 = tasks[tasks["task"] == "t0"]
    assert list(t0["occurrence"]) == [0, 1] and list(t0["latest"]) == [False, True]
    # Both occurrences get the final error, and forgetting relative to the latest training.
    np.testing.assert_allclose(t0["final_error"], task_error(0.7) + FINAL_ERROR_DELTA)
    np.testing.assert_allclose(tasks["forgetting"], FINAL_ERROR_DELTA)


def test_examples_and_per_example(synthetic_run):
    run = load_run(synthetic_run)
    single = run.examples(1)
    assert len(single) == NUM_EXAMPLES
    assert (single["task"] == "t0").all() and (single["event_index"] == 1).all()
    assert {"aa", "correct", "budget_2x/correct", "label"} <= set(single.columns)
    multi = run.examples(11)
    assert multi["kind"].iloc[0] == "multi_label" and multi["labels"].iloc[0].shape == (4,)
    assert len(run.per_example()) == len(STREAM) * NUM_EXAMPLES
    assert len(run.per_example(final=None)) == (len(STREAM) + 5) * NUM_EXAMPLES
    assert set(run.per_example(kind="multi_label")["task"]) == {"m4"}
    with pytest.raises(KeyError):
        run.examples(0)  # a training event saves no per-example file


def test_load_runs_stacks_with_distinct_labels(synthetic_run, tmp_path):
    other = write_synthetic_run(tmp_path / "deq-other", seed=1)
    stacked = load_runs(f"{synthetic_run},{other}")
    assert len(stacked) == 2 * len(STREAM)
    assert set(stacked["run"]) == {"deq (deq-synthetic)", "deq (deq-other)"}
    assert [r.label for r in load_all([synthetic_run])] == ["deq"]


def test_correlation_against_scipy_and_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)
    for method, reference in (("pearson", scipy_stats.pearsonr),
                              ("spearman", scipy_stats.spearmanr)):
        c = stats.correlation(x, y, method, num_bootstrap=500)
        assert c["r"] == pytest.approx(reference(x, y)[0])
        assert 0.3 < c["low"] < c["r"] < c["high"] < 0.95
    unrelated = stats.correlation(x, rng.normal(size=60), num_bootstrap=500)
    assert unrelated["low"] < 0 < unrelated["high"]
    assert stats.correlation(x, x ** 3, "spearman")["r"] == pytest.approx(1.0)
    assert np.isnan(stats.correlation([1, 2], [3, 4])["r"])  # too few pairs
    assert np.isnan(stats.correlation([1, 1, 1, 1], [1, 2, 3, 4])["r"])  # constant


def test_loglinear_fit_recovers_synthetic_law(synthetic_run):
    tasks = load_run(synthetic_run).tasks
    fit = stats.loglinear_fit(tasks["aa"], tasks["error"])
    assert fit["slope"] == pytest.approx(SLOPE) and fit["intercept"] == pytest.approx(INTERCEPT)
    assert fit["r2"] == pytest.approx(1.0)
    np.testing.assert_allclose(stats.fitted_error(fit, tasks["aa"]), tasks["error"])
    table = stats.correlation_table(tasks["aa"], np.log(tasks["error"]), num_bootstrap=200)
    np.testing.assert_allclose(table["r"], -1.0)
    assert np.isnan(stats.loglinear_fit([0.5, 0.5], [0.1, 0.2])["slope"])


def test_example_auc(synthetic_run):
    assert stats.roc_auc([1, 2, 3, 4], [False, True, False, True]) == pytest.approx(0.75)
    assert np.isnan(stats.roc_auc([1, 2, 3], [True, True, True]))
    examples = load_run(synthetic_run).per_example(kind="single_label").assign(run="deq")
    table = stats.example_auc_table(examples)
    per_event = table[table["task"] != "(all tasks)"]
    assert len(per_event) == 5
    np.testing.assert_allclose(per_event["auc"], 1.0)  # correct = the highest-AA examples
    # Scrambling AA against correctness brings the pooled AUC to chance.
    shuffled = examples.assign(aa=np.random.default_rng(0).permutation(examples["aa"].values))
    pooled = stats.example_auc_table(shuffled).query("task == '(all tasks)'")["auc"].item()
    assert abs(pooled - 0.5) < 0.1


def test_budget_tables(synthetic_run):
    run = load_run(synthetic_run)
    table = stats.budget_table(run)
    assert len(table) == 3 * len(STREAM) and set(table["budget"]) == {1, 2, 4}
    t1 = table[table["task"] == "t1"].set_index("budget")
    np.testing.assert_allclose(t1["error"], task_error(0.4) * np.array([1, 0.9, 0.8]))
    np.testing.assert_allclose(t1["aa"], [0.4, 0.45, 0.48])
    pooled = stats.example_budget_table(run).set_index("budget")
    assert pooled.loc[4, "accuracy"] > pooled.loc[2, "accuracy"] == pooled.loc[1, "accuracy"]
    assert pooled.loc[2, "aa"] == pytest.approx(pooled.loc[1, "aa"] + 0.05)


def test_committed_notebooks_have_no_outputs():
    for name in NOTEBOOKS:
        nb = nbformat.read(REPO / "analysis" / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "run_dirs" in tagged[0].source, name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def executed_text(notebook: Path) -> str:
    """Everything a notebook printed or displayed as text."""
    nb = nbformat.read(notebook, as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_report_command(real_run, synthetic_run, plain_run, tmp_path):
    """The documented command: both notebooks on a real run and two synthetic ones, headless."""
    out = tmp_path / "figures"
    proc = subprocess.run(
        [sys.executable, "-m", "nevis.analysis.report", str(real_run), str(synthetic_run),
         str(plain_run), f"--output_dir={out}"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in PI_FIGURES + STREAM_FIGURES:
        assert (out / f"{name}.png").stat().st_size > 1000, name
        assert str(out / f"{name}.png") in proc.stdout
    assert str(out / "path_independence.ipynb") in proc.stdout
    text = executed_text(out / "path_independence.ipynb")
    assert "finetune (" in text and "has no AA scores" in text
    assert "deq (deq-synthetic)" in text
    overview = executed_text(out / "stream_overview.ipynb")
    assert "uci_digits" in overview and "t3" in overview and "average forgetting" in overview


def test_path_independence_without_aa_skips_figures(plain_run):
    """The default output folder, and a learner without AA scores: a message, no figures."""
    report = run_notebooks([plain_run], notebooks=["path_independence"])
    figures = plain_run / "figures"
    assert report.notebooks == [figures / "path_independence.ipynb"] and report.figures == []
    text = executed_text(figures / "path_independence.ipynb")
    assert "has no AA scores" in text and "skipping" in text


@pytest.mark.skipif(not HAS_DEQ, reason="experiments/deq.py (the DEQ learner) not written yet")
def test_path_independence_on_tiny_deq_run(real_run):
    run = load_run(real_run)
    assert run.has_aa and {"aa", "aa_2x", "aa_4x"} <= set(run.tasks.columns)
    assert len(stats.budget_table(run)) == 3 * len(run.tasks)
    report = run_notebooks([real_run], notebooks=["path_independence"])
    for name in PI_FIGURES:
        assert real_run / "figures" / f"{name}.png" in report.figures, name


def test_report_fails_naming_notebook_and_error(synthetic_run, tmp_path, capsys):
    broken = nbformat.v4.new_notebook()
    broken.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                     "display_name": "Python 3"}
    params = nbformat.v4.new_code_cell("run_dirs = ''\noutput_dir = None")
    params.metadata["tags"] = ["parameters"]
    broken.cells = [params, nbformat.v4.new_code_cell("raise ValueError('no such column')")]
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)
    code = main([str(synthetic_run), f"--output_dir={tmp_path / 'out'}",
                 f"--notebooks={path}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.ipynb" in err and "ValueError: no such column" in err
    with pytest.raises(NotebookError):
        run_notebooks([synthetic_run], tmp_path / "out", [str(path)])
    assert main([str(tmp_path / "missing")]) == 1
