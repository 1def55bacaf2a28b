"""Task metadata shared by streams, data, learners and metrics.

Kept dependency-free so that every layer can import it without importing any other.
"""

from __future__ import annotations

import dataclasses
import enum
import re

SPLITS = ("train", "dev", "train_and_dev", "dev_test", "test")
PREDICTION_SPLITS = ("dev", "dev_test", "test")


class TaskKind(enum.StrEnum):
    SINGLE_LABEL = "single_label"
    MULTI_LABEL = "multi_label"

    @property
    def label_field(self) -> str:
        """The example field holding the target: `label` (a class index) for single-label
        tasks, `labels` (a multi-hot vector in batches) for multi-label ones."""
        return "label" if self is TaskKind.SINGLE_LABEL else "labels"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a learner may know about a task before seeing its data."""

    key: str  # canonical dataset key prefix, e.g. "voc_2007"; dataset keys are f"{key}_{split}"
    name: str  # display name from the paper / catalog
    year: int
    kind: TaskKind
    num_classes: int | None  # None only for NEVIS tasks whose count is computed at extraction
    source: str  # "embedded", a TFDS name, or "custom"

    def dataset_key(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; valid splits: {', '.join(SPLITS)}.")
        return f"{self.key}_{split}"


def canonical_key(display_name: str) -> str:
    """Dataset key prefix as the reference builds it: lower case, separators become '_'."""
    key = display_name.strip().lower().rstrip(".")
    key = re.sub(r"[\s\-/~,.()']+", "_", key)
    return key.strip("_")
