"""The learner interface: a bundle of pure functions over explicit state.

A learner never writes results and never sees labels at prediction time. The environment
loop hands it events and contexts (data access, checkpoint hooks, the device mesh) and keeps
everything else to itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from jax.sharding import Mesh

from nevis.streams import PredictionEvent, TrainingEvent
from nevis.tasks import TaskSpec

# Between events a learner's state is a nested dict of arrays (plus ints and floats), so that
# it can be checkpointed and restored without a template.
LearnerState = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ResourceUsage:
    """Compute spent. FLOPs come from XLA's cost analysis of each compiled step × its calls."""

    train_flops: float = 0.0
    validation_flops: float = 0.0
    inference_flops: float = 0.0
    train_steps: int = 0
    peak_parameter_count: int = 0
    peak_parameter_bytes: int = 0

    def __add__(self, other: ResourceUsage) -> ResourceUsage:
        return ResourceUsage(
            train_flops=self.train_flops + other.train_flops,
            validation_flops=self.validation_flops + other.validation_flops,
            inference_flops=self.inference_flops + other.inference_flops,
            train_steps=self.train_steps + other.train_steps,
            peak_parameter_count=max(self.peak_parameter_count, other.peak_parameter_count),
            peak_parameter_bytes=max(self.peak_parameter_bytes, other.peak_parameter_bytes),
        )

    @property
    def total_flops(self) -> float:
        return self.train_flops + self.validation_flops + self.inference_flops

    def as_dict(self) -> dict[str, float]:
        return {**dataclasses.asdict(self), "total_flops": self.total_flops}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ResourceUsage:
        """Inverse of `as_dict` (the derived `total_flops` is dropped)."""
        return cls(**{k: v for k, v in values.items() if k != "total_flops"})


class SplitSource(Protocol):
    """Random access to one split of a prepared dataset (see nevis.data.storage)."""

    spec: TaskSpec
    num_examples: int

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class TrainContext:
    """What the loop lends a learner for one training event."""

    data: Callable[[TaskSpec, str], SplitSource]
    mesh: Mesh
    # Saves the learner's mid-event state (a pytree, plus JSON-able notes such as running
    # statistics) with the environment state, atomically.
    save_checkpoint: Callable[[Any, dict[str, Any]], None]
    # Returns the stored (mid-event state restored into the given template, notes), or None.
    restore_checkpoint: Callable[[Any], tuple[Any, dict[str, Any]] | None]
    checkpoint_every: int  # steps between mid-event checkpoints
    process_index: int = 0
    process_count: int = 1
    show_progress: bool = True
    # Optional scalar logging (`--tensorboard_dir`): (step within the event, name → value),
    # called at logged and validated steps; None when nothing is written.
    metrics_writer: Callable[[int, Mapping[str, Any]], None] | None = None
    # The run's dataset directory, for learners that open the data in other processes.
    data_dir: Path | None = None


@dataclasses.dataclass(frozen=True)
class PredictContext:
    """Label-free batches of the split to predict (keys: image, index, mask).

    `batches(batch_size, image_size)` may be called several times (e.g. a first pass over the
    whole split to choose pairings, then a pass that predicts); every call serves the split
    once, from the start, in the same order. In a multi-process run each process receives its
    own rows of every global batch.
    """

    batches: Callable[[int, int], Iterator[dict[str, np.ndarray]]]  # (batch_size, image_size)
    num_examples: int
    mesh: Mesh
    process_index: int = 0
    process_count: int = 1


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Outputs for one batch of `PredictContext.batches`, all rows (padding included).

    `index` and `mask` are that batch's own arrays, passed through unchanged: the loop finds
    each row's label by `index` (so predictions may come in any order, after any number of
    passes) and checks that the unmasked rows of all predictions cover every example of the
    split exactly once; an event that does not is failed. In a multi-process run `logits` are
    global (`parallel.to_host`) while `index` and `mask` are this process's rows; the loop
    gathers them across processes.

    `logits` follows the metrics contract (see nevis.metrics). `extra_logits` are alternative
    outputs scored the same way (e.g. at a larger test-time budget); `scores` are per-example
    diagnostics (e.g. path-independence scores) saved with the event's per-example results.
    A non-finite diagnostic is recorded on the event and left out; it never fails the event.
    """

    logits: np.ndarray
    index: np.ndarray
    mask: np.ndarray
    extra_logits: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    scores: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainOutput:
    state: LearnerState
    resources: ResourceUsage
    # Scalars describing training (steps, best dev error, solver stats); `diverged_at_step`
    # marks a task whose training produced NaN or diverged.
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PredictOutput:
    predictions: Iterator[Prediction]
    resources: ResourceUsage


@dataclasses.dataclass(frozen=True)
class Learner:
    name: str
    init: Callable[[], LearnerState]
    train: Callable[[TrainingEvent, LearnerState, TrainContext], TrainOutput]
    predict: Callable[[PredictionEvent, LearnerState, PredictContext], PredictOutput]
