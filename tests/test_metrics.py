import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss

from nevis import metrics
from nevis.tasks import TaskKind


def test_single_label_hand_computed():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 5.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 2, 2, 1])
    out = metrics.single_label(logits, labels)
    # Example 2 (label 2) ranks second; example 4 is a three-way tie and counts as wrong.
    assert out["top_one_correct"] == 2
    assert out["top_one_accuracy"] == pytest.approx(0.5)
    assert out["error"] == pytest.approx(0.5)
    assert out["top_five_accuracy"] == 1.0
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert out["cross_entropy"] == pytest.approx(log_loss(labels, probs, labels=[0, 1, 2]))


def test_top_five_with_many_classes():
    logits = np.tile(np.arange(10.0), (2, 1))  # class 9 scores highest
    out = metrics.single_label(logits, np.array([5, 4]))  # ranks 5 and 6 (1-based)
    assert out["top_five_accuracy"] == 0.5
    assert out["top_one_accuracy"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_average_precision_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((300, 7)) < 0.25).astype(np.float32)
    labels[0] = 1  # every class has a positive
    scores = np.round(rng.normal(size=labels.shape), 1) + labels  # rounding creates ties
    out = metrics.multi_label(scores, labels)
    assert out["mean_average_precision"] == pytest.approx(
        average_precision_score(labels, scores, average="macro"), abs=1e-12
    )
    assert out["error"] == pytest.approx(1 - out["mean_average_precision"])


def test_classes_without_positives_are_skipped():
    labels = np.array([[1, 0], [0, 0], [1, 0]], np.float32)
    out = metrics.multi_label(np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.5]]), labels)
    assert out["classes_scored"] == 1
    assert out["mean_average_precision"] == 1.0


def test_update_masks_padding_and_validates():
    state = metrics.init(TaskKind.SINGLE_LABEL, 2)
    logits = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 0.0]])
    state = metrics.update(state, np.array([0, 0, 1]), logits, np.array([1, 1, 0], bool),
                           np.arange(3))
    assert metrics.result(state)["num_examples"] == 2
    assert metrics.result(state)["top_one_accuracy"] == 0.5
    with pytest.raises(ValueError, match="shape"):
        metrics.update(state, np.array([0]), np.zeros((1, 3)), np.ones(1, bool), np.arange(1))
    with pytest.raises(FloatingPointError):
        metrics.update(state, np.array([0]), np.array([[np.nan, 0]]), np.ones(1, bool),
                       np.arange(1))
    # NaN in a padded row is ignored.
    metrics.update(state, np.array([0]), np.array([[np.nan, 0]]), np.zeros(1, bool), np.arange(1))


def _record(task, error, *, final=False, kind="single_label", n=10, split="dev_test",
            status="ok"):
    m = {"error": error, "num_examples": n}
    if kind == "single_label":
        m.update(top_one_accuracy=1 - error, top_one_correct=round((1 - error) * n))
    else:
        m.update(mean_average_precision=1 - error)
    return {"event": "predict", "task": task, "split": split, "final": final, "kind": kind,
            "metrics": m, "status": status}


def test_stream_summary():
    records = [
        _record("a", 0.5, n=10),
        _record("b", 0.2, kind="multi_label"),
        _record("a", 0.1, n=30),  # a repeat of task a
        _record("a", 0.3, final=True),
        _record("b", 0.2, final=True, kind="multi_label"),
    ]
    s = metrics.stream_summary(records)["dev_test"]
    assert s["num_events"] == 3
    assert s["stream_error"] == pytest.approx((0.5 + 0.2 + 0.1) / 3)
    assert s["unique_task_error"] == pytest.approx((0.1 + 0.2) / 2)
    assert s["average_single_label_accuracy"] == pytest.approx((0.5 + 0.9) / 2)
    assert s["pooled_single_label_accuracy"] == pytest.approx((5 + 27) / 40)
    assert s["average_multi_label_mean_average_precision"] == pytest.approx(0.8)
    assert s["forgetting"] == pytest.approx({"a": 0.2, "b": 0.0})
    assert s["final_stream_error"] == pytest.approx(0.25)
    assert math.isclose(s["average_forgetting"], 0.1)


def test_failed_events_count_as_error_one_in_every_average():
    # A failed record's stored metrics are ignored: it counts as error 1, accuracy/mAP 0.
    records = [
        _record("a", 0.2, n=10),
        _record("b", 0.0, kind="multi_label", status="failed"),
        _record("c", 0.0, n=30, status="failed"),
        _record("a", 0.4, final=True),
        _record("b", 0.1, final=True, kind="multi_label"),
        _record("c", 0.0, final=True, n=30, status="failed"),
    ]
    s = metrics.stream_summary(records)["dev_test"]
    assert s["num_events"] == 3 and s["num_failed_events"] == 2
    assert s["stream_error"] == pytest.approx((0.2 + 1 + 1) / 3)
    assert s["stream_error_successful_only"] == pytest.approx(0.2)
    assert s["unique_task_error"] == pytest.approx((0.2 + 1 + 1) / 3)
    assert s["average_single_label_accuracy"] == pytest.approx(0.8 / 2)
    assert s["pooled_single_label_accuracy"] == pytest.approx(8 / 40)
    assert s["average_multi_label_mean_average_precision"] == 0.0
    assert s["num_failed_final_events"] == 1
    assert s["final_stream_error"] == pytest.approx((0.4 + 0.1 + 1) / 3)
    assert s["forgetting"] == pytest.approx({"a": 0.2, "b": -0.9, "c": 0.0})


def test_failure_result():
    single = metrics.failure_result(TaskKind.SINGLE_LABEL, 7)
    assert single == {"num_examples": 7, "error": 1.0, "top_one_accuracy": 0.0,
                      "top_five_accuracy": 0.0, "top_one_correct": 0}
    multi = metrics.failure_result("multi_label", 3)
    assert multi == {"num_examples": 3, "error": 1.0, "mean_average_precision": 0.0}
