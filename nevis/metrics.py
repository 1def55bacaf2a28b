"""Per-event and stream-level metrics, as pure functions over plain numpy state.

The contract every learner's predictions follow: logits, never probabilities. Single-label
logits are [B, C] (softmax cross-entropy); multi-label logits are [B, C] of independent
Bernoulli logits (sigmoid). Metrics know no learner: they see labels, logits and a mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy.special import log_softmax

from nevis.tasks import TaskKind

State = dict[str, Any]


def init(kind: TaskKind, num_classes: int) -> State:
    return {
        "kind": TaskKind(kind).value,
        "num_classes": int(num_classes),
        "index": [],
        "logits": [],
        "labels": [],
    }


def update(
    state: State, labels: np.ndarray, logits: np.ndarray, mask: np.ndarray, index: np.ndarray
) -> State:
    """Adds one batch; rows whose mask is False are padding and are ignored."""
    logits = np.asarray(logits, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    expected = (mask.shape[0], state["num_classes"])
    if logits.shape != expected:
        raise ValueError(
            f"Predictions have shape {logits.shape}, expected {expected} (batch, classes)."
        )
    if not np.all(np.isfinite(logits[mask])):
        raise FloatingPointError("Predictions contain NaN or infinite logits.")
    return {
        **state,
        "index": state["index"] + [np.asarray(index)[mask]],
        "logits": state["logits"] + [logits[mask]],
        "labels": state["labels"] + [np.asarray(labels)[mask]],
    }


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty_shape, dtype)


def per_example(state: State) -> dict[str, np.ndarray]:
    """Per-example outcomes, for analyses that relate them to other per-example scores."""
    c = state["num_classes"]
    index = _concat(state["index"], (0,), np.int64)
    logits = _concat(state["logits"], (0, c), np.float32)
    if state["kind"] == TaskKind.SINGLE_LABEL:
        labels = _concat(state["labels"], (0,), np.int64)
        predicted = logits.argmax(-1) if len(logits) else np.zeros((0,), np.int64)
        correct = label_rank(logits, labels) == 0 if len(logits) else np.zeros((0,), bool)
        return {"index": index, "label": labels, "predicted": predicted, "correct": correct}
    labels = _concat(state["labels"], (0, c), np.float32)
    return {"index": index, "labels": labels, "scores": 1 / (1 + np.exp(-logits))}


def result(state: State) -> dict[str, float]:
    """Scalar metrics of one event. `error` is 1 - top-1 accuracy or 1 - mean AP."""
    c = state["num_classes"]
    logits = _concat(state["logits"], (0, c), np.float32)
    n = len(logits)
    if n == 0:
        raise ValueError("No examples were predicted for this event.")
    if state["kind"] == TaskKind.SINGLE_LABEL:
        labels = _concat(state["labels"], (0,), np.int64)
        return single_label(logits, labels)
    labels = _concat(state["labels"], (0, c), np.float32)
    return multi_label(logits, labels)


def label_rank(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    label_logit = logits[np.arange(len(labels)), labels][:, None]
    return (logits >= label_logit).sum(-1) - 1


def single_label(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    n, c = logits.shape
    log_probs = log_softmax(logits.astype(np.float64), axis=-1)
    cross_entropy = -log_probs[np.arange(n), labels].mean()
    # Ties count against the label (a constant predictor must not score 100%): rank = number
    # of *other* classes scoring at least as high as the label.
    rank = label_rank(logits, labels)
    top1 = float((rank < 1).mean())
    top5 = float((rank < min(5, c)).mean())
    return {
        "num_examples": n,
        "top_one_accuracy": top1,
        "top_five_accuracy": top5,
        "top_one_correct": int((rank < 1).sum()),
        "cross_entropy": float(cross_entropy),
        "error": 1.0 - top1,
    }


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Non-interpolated AP (as scikit-learn): mean precision at each positive's rank.

    Tied scores are ranked together, so the result does not depend on input order.
    """
    positives = positives.astype(bool)
    if not positives.any():
        return math.nan
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positives[order]
    tp = np.cumsum(p)
    # Evaluate precision only at the last position of each run of tied scores.
    last = np.r_[s[1:] != s[:-1], True]
    tp_at, seen_at = tp[last], (np.arange(len(s)) + 1)[last]
    precision = tp_at / seen_at
    recall_step = np.diff(np.r_[0, tp_at]) / tp[-1]
    return float((precision * recall_step).sum())


def multi_label(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Macro mean AP over classes that have at least one positive example."""
    aps = [average_precision(logits[:, k], labels[:, k]) for k in range(labels.shape[1])]
    valid = [a for a in aps if not math.isnan(a)]
    if not valid:
        raise ValueError("No class has a positive example; mean average precision is undefined.")
    mean_ap = float(np.mean(valid))
    return {
        "num_examples": len(logits),
        "mean_average_precision": mean_ap,
        "classes_scored": len(valid),
        "error": 1.0 - mean_ap,
    }


FAILED_ERROR = 1.0  # what a failed prediction event scores in every average


def failure_result(kind: TaskKind | str, num_examples: int) -> dict[str, float]:
    """The scalar metrics a failed prediction event counts with: error 1, accuracy or mAP 0.

    A learner that produced no usable predictions for a split achieved nothing on it; scoring
    it as if it had never been asked would flatter a learner that diverges on hard tasks.
    """
    out: dict[str, float] = {"num_examples": int(num_examples), "error": FAILED_ERROR}
    if TaskKind(kind) == TaskKind.SINGLE_LABEL:
        out.update(top_one_accuracy=0.0, top_five_accuracy=0.0, top_one_correct=0)
    else:
        out.update(mean_average_precision=0.0)
    return out


def scored_metrics(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The metrics a prediction record counts with in stream averages (see failure_result)."""
    if record["status"] == "ok":
        return record["metrics"]
    num_examples = (record.get("metrics") or {}).get("num_examples", 0)
    return failure_result(record["kind"], num_examples)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def stream_summary(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Stream-level scores from the per-event records, grouped by prediction split.

    The headline `stream_error` is the uniform mean of per-event errors (repeats count once
    per occurrence, as in the reference); `unique_task_error` counts each dataset once, at its
    latest training. Forgetting compares the final re-evaluation with the score right after the
    task's (last) training. A failed prediction event (status other than "ok") counts in every
    average with error 1 and accuracy / mAP 0 (`failure_result`);
    `stream_error_successful_only` is the mean over the successful events alone.
    """
    summary: dict[str, Any] = {}
    predictions = [r for r in records if r["event"] == "predict"]
    for split in sorted({r["split"] for r in predictions}):
        # (record, the metrics it counts with) in stream order.
        during = [(r, scored_metrics(r)) for r in predictions
                  if r["split"] == split and not r["final"]]
        final = [(r, scored_metrics(r)) for r in predictions if r["split"] == split and r["final"]]
        single = [m for r, m in during if r["kind"] == TaskKind.SINGLE_LABEL]
        multi = [m for r, m in during if r["kind"] == TaskKind.MULTI_LABEL]
        latest = {r["task"]: m for r, m in during}
        pooled_total = sum(m["num_examples"] for m in single)
        out: dict[str, Any] = {
            "num_events": len(during),
            "num_failed_events": sum(r["status"] != "ok" for r, _ in during),
            "stream_error": _mean(m["error"] for _, m in during),
            "stream_error_successful_only": _mean(
                m["error"] for r, m in during if r["status"] == "ok"
            ),
            "unique_task_error": _mean(m["error"] for m in latest.values()),
            "average_single_label_accuracy": _mean(m["top_one_accuracy"] for m in single),
            "pooled_single_label_accuracy": (
                sum(m["top_one_correct"] for m in single) / pooled_total
                if pooled_total
                else None
            ),
            "average_multi_label_mean_average_precision": _mean(
                m["mean_average_precision"] for m in multi
            ),
        }
        if final:
            forgetting = {
                r["task"]: m["error"] - latest[r["task"]]["error"]
                for r, m in final
                if r["task"] in latest
            }
            out["num_failed_final_events"] = sum(r["status"] != "ok" for r, _ in final)
            out["final_stream_error"] = _mean(m["error"] for _, m in final)
            out["average_forgetting"] = _mean(forgetting.values())
            out["forgetting"] = forgetting
        summary[split] = out
    return summary


def run_summary(stream: str, records: list[Mapping[str, Any]], resources: Mapping[str, float],
                num_events: int) -> dict[str, Any]:
    """A run's summary from its event records: stream errors per split (failed events count
    as error 1), compute, failures, divergences, timing, the learner's score diagnostics and
    (when it reports them) its per-task choices."""
    summary: dict[str, Any] = {
        "stream": stream,
        "complete": len(records) == num_events,
        "events_completed": len(records),
        "events_total": num_events,
        "splits": stream_summary(records),
        "resources": dict(resources),
        "failed_events": [
            {k: r.get(k) for k in ("event_index", "task", "split", "status", "reason")}
            for r in records if r["status"] != "ok"
        ],
        "diagnostic_failures": [
            {k: r.get(k) for k in ("event_index", "task", "split", "diagnostic_failures")}
            for r in records if r.get("diagnostic_failures")
        ],
        "diverged_tasks": {
            r["task"]: r["info"].get("diverged_at_step") for r in records
            if r["event"] == "train" and r["status"] == "diverged"
        },
        "timing": {"seconds": sum(r["seconds"] for r in records)},
    }
    diagnostics = score_diagnostics(records)
    if diagnostics:
        summary["diagnostics"] = diagnostics
    choices = learner_choices(records)
    if choices:
        summary["learner_choices"] = choices
    return summary


# Training-event `info` keys that say what a learner chose for a task (e.g. which
# initialisation and which hyper-parameter trial a searching learner kept).
CHOICE_KEYS = ("chosen_candidate", "chosen_trial", "num_trials")


def learner_choices(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per training event that reports any of `CHOICE_KEYS` in its info: those values, so a
    run's summary shows what a searching learner picked for each task without reading
    events.jsonl (which keeps the full details, e.g. every trial)."""
    out = []
    for r in records:
        info = r.get("info") or {}
        if r["event"] == "train" and any(key in info for key in CHOICE_KEYS):
            out.append({"event_index": r.get("event_index"), "task": r.get("task"),
                        **{key: info[key] for key in CHOICE_KEYS if key in info}})
    return out


def score_diagnostics(records: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-example scores a learner reports (e.g. path independence), averaged per event as
    `scores/<name>`: their mean over the stream's prediction events (not the final
    re-evaluation), and their Pearson correlation with per-event accuracy when at least three
    events vary. A quick look only; `nevis.analysis` has the statistics with intervals."""
    during = [r for r in records
              if r["status"] == "ok" and r["event"] == "predict" and not r["final"]]
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({k for r in during for k in r["metrics"] if k.startswith("scores/")}):
        pairs = [(r["metrics"][name], 1 - r["metrics"]["error"]) for r in during
                 if r["metrics"].get(name) is not None]
        entry: dict[str, Any] = {"mean": float(np.mean([p[0] for p in pairs])) if pairs else None}
        if len(pairs) >= 3 and np.std([p[0] for p in pairs]) > 0:
            entry["pearson_with_accuracy"] = float(np.corrcoef(np.array(pairs).T)[0, 1])
        out[name.removeprefix("scores/")] = entry
    return out
