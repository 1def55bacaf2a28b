"""Statistics behind the path-independence and stream figures.

scipy and scikit-learn are imported inside the functions so that loading runs stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nevis.analysis.runs import Run
from nevis.budgets import AA_SCORES, BUDGETS, metric_name

# Floor for log-scale errors: a task solved perfectly (error 0) would otherwise be -inf.
MIN_ERROR = 1e-4


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Row-wise correlation of [..., n] arrays (Spearman = Pearson of ranks)."""
    if method == "spearman":
        from scipy.stats import rankdata

        x, y = rankdata(x, axis=-1), rankdata(y, axis=-1)
    elif method != "pearson":
        raise ValueError(f"Unknown correlation {method!r}; use 'pearson' or 'spearman'.")
    x = x - x.mean(-1, keepdims=True)
    y = y - y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1))


def correlation(x: Sequence[float], y: Sequence[float], method: str = "pearson", *,
                num_bootstrap: int = 2000, confidence: float = 0.95,
                seed: int = 0) -> dict[str, float]:
    """A correlation with a percentile bootstrap interval over (x, y) pairs.

    With a handful of tasks per stream the point estimate alone is misleading; the interval
    says how much it could move. Non-finite pairs are dropped; fewer than three pairs, or a
    constant input, give NaN (resamples that are constant are ignored for the interval).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    out = {"method": method, "n": n, "r": np.nan, "low": np.nan, "high": np.nan}
    if n < 3:
        return out
    out["r"] = float(_corr(x, y, method))
    if not np.isfinite(out["r"]):
        return out
    rows = np.random.default_rng(seed).integers(0, n, size=(num_bootstrap, n))
    boot = _corr(x[rows], y[rows], method)
    boot = boot[np.isfinite(boot)]
    if boot.size:
        alpha = (1 - confidence) / 2
        out["low"], out["high"] = (float(v) for v in np.quantile(boot, [alpha, 1 - alpha]))
    return out


def correlation_table(x: Sequence[float], y: Sequence[float], **kwargs) -> pd.DataFrame:
    """Pearson and Spearman correlation (with bootstrap intervals) as a two-row table."""
    return pd.DataFrame([correlation(x, y, m, **kwargs) for m in ("pearson", "spearman")])


def loglinear_fit(score: Sequence[float], error: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of log(error) = intercept + slope · score.

    Errors span orders of magnitude across tasks, so a straight line on a log-error axis is
    the natural summary of how error falls as AA rises. Errors are floored at MIN_ERROR.
    """
    s = np.asarray(score, float)
    e = np.asarray(error, float)
    keep = np.isfinite(s) & np.isfinite(e)
    s, log_e = s[keep], np.log(np.maximum(e[keep], MIN_ERROR))
    out = {"slope": np.nan, "intercept": np.nan, "r2": np.nan, "n": int(keep.sum())}
    if len(s) < 2 or np.ptp(s) == 0:
        return out
    slope, intercept = np.polyfit(s, log_e, 1)
    residual = log_e - (intercept + slope * s)
    total = ((log_e - log_e.mean()) ** 2).sum()
    out.update(slope=float(slope), intercept=float(intercept),
               r2=float(1 - (residual**2).sum() / total) if total > 0 else np.nan)
    return out


def fitted_error(fit: dict[str, float], score: np.ndarray) -> np.ndarray:
    """The error that `loglinear_fit` predicts at `score`."""
    return np.exp(fit["intercept"] + fit["slope"] * np.asarray(score, float))


def roc_auc(score: Sequence[float], correct: Sequence[bool]) -> float:
    """ROC AUC of a per-example score as a predictor of correctness; NaN if one class only.

    AUC 0.5: the score says nothing about which examples are right; 1: it separates them.
    """
    from sklearn.metrics import roc_auc_score

    s = np.asarray(score, float)
    c = np.asarray(correct, bool)
    keep = np.isfinite(s)
    s, c = s[keep], c[keep]
    if c.size == 0 or c.all() or not c.any():
        return np.nan
    return float(roc_auc_score(c, s))


def example_auc_table(examples: pd.DataFrame, score: str = "aa",
                      target: str = "correct") -> pd.DataFrame:
    """AUC of `score` for `target` per run and task, plus an `(all tasks)` row per run.

    Only single-label events have per-example correctness, so multi-label rows are skipped.
    """
    if examples.empty or score not in examples or target not in examples:
        return pd.DataFrame(columns=["run", "task", "event_index", "n", "accuracy", "auc"])
    df = examples.dropna(subset=[score, target])
    if "run" not in df:
        df = df.assign(run="")
    rows = []
    for (run, index, task), g in df.groupby(["run", "event_index", "task"], sort=False):
        rows.append({"run": run, "task": task, "event_index": index, "n": len(g),
                     "accuracy": float(g[target].astype(bool).mean()),
                     "auc": roc_auc(g[score], g[target].astype(bool))})
    for run, g in df.groupby("run", sort=False):
        rows.append({"run": run, "task": "(all tasks)", "event_index": None, "n": len(g),
                     "accuracy": float(g[target].astype(bool).mean()),
                     "auc": roc_auc(g[score], g[target].astype(bool))})
    table = pd.DataFrame(rows)
    table["event_index"] = table["event_index"].astype("Int64")
    return table


def budget_table(run: Run) -> pd.DataFrame:
    """Per task and test-time budget (1×, 2×, 4× the training solver budget): accuracy and AA.

    Long format, one row per (task event, budget); budgets a run did not evaluate are absent.
    """
    tasks = run.tasks
    rows = []
    for _, t in tasks.iterrows():
        for budget in BUDGETS:
            error_key = metric_name(budget, "error")
            if error_key not in t or pd.isna(t[error_key]):
                continue
            aa_key = f"scores/{AA_SCORES[budget]}"
            rows.append({
                "run": run.label, "task": t["task"], "event_index": t["event_index"],
                "kind": t["kind"], "budget": budget, "error": t[error_key],
                "accuracy": 1 - t[error_key],
                "aa": t[aa_key] if aa_key in t else np.nan,
            })
    return pd.DataFrame(rows, columns=["run", "task", "event_index", "kind", "budget",
                                       "error", "accuracy", "aa"])


def example_budget_table(run: Run) -> pd.DataFrame:
    """Per budget, the pooled per-example accuracy and mean AA (single-label events only).

    Pools examples rather than averaging tasks, complementing `budget_table`.
    """
    ex = run.per_example(kind="single_label")
    rows = []
    for budget in BUDGETS:
        correct = metric_name(budget, "correct")
        aa = AA_SCORES[budget]
        if ex.empty or correct not in ex:
            continue
        rows.append({"run": run.label, "budget": budget, "n": int(ex[correct].notna().sum()),
                     "accuracy": float(ex[correct].astype(float).mean()),
                     "aa": float(ex[aa].mean()) if aa in ex else np.nan})
    return pd.DataFrame(rows, columns=["run", "budget", "n", "accuracy", "aa"])
