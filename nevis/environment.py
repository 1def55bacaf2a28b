"""The environment loop: stream → learner → metrics → results. The only writer of results.

State between events is the learner's state and the loop's own `LoopState` (completed event
count, event records, resources); both are checkpointed after every event and every
`checkpoint_every` training steps, so a killed run resumes where it stopped and ends with the
same results as an uninterrupted one.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from nevis import metrics, parallel, results
from nevis.checkpointing import Checkpointer
from nevis.data import loader
from nevis.datasets import DataAccess
from nevis.learners.base import (
    Learner,
    PredictContext,
    Prediction,
    ResourceUsage,
    TrainContext,
)
from nevis.streams import PredictionEvent, Stream, TrainingEvent
from nevis.tasks import TaskKind, TaskSpec
from nevis.tensorboard import MetricsWriter

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    workdir: Path
    data_dir: Path
    checkpoint_every: int = 200
    show_progress: bool = True
    # Scalars per logged step and per event (`--tensorboard_dir`, see nevis.tensorboard).
    metrics_writer: MetricsWriter | None = None


_TARGET_CHUNK = 1024  # records read at a time when collecting a split's labels


@dataclasses.dataclass(frozen=True)
class LoopState:
    """The loop's state between events; checkpointed as JSON next to the learner's state."""

    completed: int = 0  # events done, in stream order
    records: tuple[dict[str, Any], ...] = ()  # one per completed event (events.jsonl)
    resources: ResourceUsage = ResourceUsage()  # summed over the completed events
    # While a training event is interrupted mid-way: its index, and the learner's notes
    # (running statistics) saved with its mid-event checkpoint.
    mid_event_index: int | None = None
    mid_event_notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def resumes(self, index: int) -> bool:
        """Whether event `index` continues from a mid-event checkpoint."""
        return self.mid_event_index == index

    def to_dict(self) -> dict[str, Any]:
        out = {"completed": self.completed, "records": list(self.records),
               "resources": self.resources.as_dict(),
               "has_mid_event": self.mid_event_index is not None}
        if self.mid_event_index is not None:
            out.update(event_index=self.mid_event_index, mid_event_notes=self.mid_event_notes)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LoopState:
        mid = values.get("event_index") if values.get("has_mid_event") else None
        return cls(completed=int(values["completed"]), records=tuple(values["records"]),
                   resources=ResourceUsage.from_dict(values["resources"]),
                   mid_event_index=mid,
                   mid_event_notes=dict(values.get("mid_event_notes") or {}) if mid is not None
                   else {})


class EventFailure(Exception):
    """A prediction event's output cannot be scored (non-finite, wrong shape, bad coverage)."""


def _ranges(indices: np.ndarray, limit: int = 8) -> str:
    """Sorted indices as compact ranges, e.g. "3, 40..63" (at most `limit` ranges shown)."""
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = np.r_[indices[:1], indices[breaks + 1]]
    ends = np.r_[indices[breaks], indices[-1:]]
    parts = [f"{a}" if a == b else f"{a}..{b}" for a, b in zip(starts, ends, strict=True)]
    more = f", … ({len(parts) - limit} more ranges)" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


class _EventScorer:
    """Scores one prediction event from `Prediction`s, looking each row's label up by index.

    Main logits that are not finite, do not match their index/mask, or do not cover the split
    exactly once raise EventFailure. Diagnostics never fail the scored prediction; a problem
    with one is named in `diagnostic_failures` instead: `extra_logits` that are not finite or
    have the wrong shape are left out whole; a per-example score's non-finite values are left
    out of its event mean (and kept, as NaN, in the per-example file).
    """

    def __init__(self, task: TaskSpec, split: str, learner: str, targets: np.ndarray):
        self.task, self.split, self.learner, self.targets = task, split, learner, targets
        self.n = len(targets)
        self.seen = np.zeros(self.n, bool)
        self.main = metrics.init(task.kind, task.num_classes)
        self.extras: dict[str, metrics.State] = {}
        self.scores: dict[str, list[np.ndarray]] = collections.defaultdict(list)
        self.diagnostic_failures: dict[str, str] = {}
        self.batches = 0

    def _fail(self, what: str) -> EventFailure:
        return EventFailure(
            f"learner {self.learner!r} {what} ({self.task.key}/{self.split}, "
            f"prediction {self.batches})"
        )

    def _diagnostic_failed(self, name: str, reason: str) -> None:
        self.diagnostic_failures[name] = f"{reason} (prediction {self.batches})"
        self.extras.pop(name, None)
        self.scores.pop(name, None)

    def add(self, prediction: Prediction) -> None:
        # Collective in a multi-process run (every process handles the same predictions).
        rows = parallel.gather_rows({"index": np.asarray(prediction.index),
                                     "mask": np.asarray(prediction.mask)})
        index, mask = np.asarray(rows["index"]).astype(np.int64), np.asarray(rows["mask"], bool)
        logits = np.asarray(prediction.logits)
        if index.ndim != 1 or mask.shape != index.shape or logits.shape[:1] != index.shape:
            raise self._fail(
                f"returned logits {logits.shape} for index {index.shape} and mask {mask.shape};"
                " pass each batch's index and mask through unchanged, one logits row per row"
            )
        picked = index[mask]
        if picked.size and (picked.min() < 0 or picked.max() >= self.n):
            raise self._fail(f"predicted indices outside the split's range 0..{self.n - 1}")
        unique, counts = np.unique(picked, return_counts=True)
        repeated = np.union1d(unique[counts > 1], picked[self.seen[picked]])
        if repeated.size:
            raise self._fail(f"predicted example(s) more than once: indices {_ranges(repeated)}")
        labels = self.targets[np.where(mask, index, 0)]
        try:
            self.main = metrics.update(self.main, labels, logits, mask, index)
        except (ValueError, FloatingPointError) as e:
            raise self._fail(f"gave unusable logits: {str(e).rstrip('.')}") from e
        self.seen[picked] = True
        for name, extra in prediction.extra_logits.items():
            if name in self.diagnostic_failures:
                continue
            state = self.extras.get(name, metrics.init(self.task.kind, self.task.num_classes))
            try:
                self.extras[name] = metrics.update(state, labels, extra, mask, index)
            except (ValueError, FloatingPointError) as e:
                self._diagnostic_failed(name, str(e).rstrip("."))
        for name, value in prediction.scores.items():
            if name in self.diagnostic_failures:
                continue
            value = np.asarray(value)
            if value.shape[:1] != mask.shape:
                self._diagnostic_failed(name, f"shape {value.shape}, expected ({len(mask)}, …)")
            else:
                self.scores[name].append(value[mask])
        self.batches += 1

    def check_complete(self) -> None:
        missing = np.flatnonzero(~self.seen)
        if missing.size:
            raise EventFailure(
                f"learner {self.learner!r} predicted {self.n - missing.size} of {self.n} "
                f"examples of {self.task.key}/{self.split}; missing indices {_ranges(missing)}"
            )

    def results(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(the event's scalar metrics, its per-example arrays), diagnostics included."""
        scalars: dict[str, Any] = dict(metrics.result(self.main))
        per_example = dict(metrics.per_example(self.main))
        for name, state in self.extras.items():
            scalars.update({f"{name}/{k}": v for k, v in metrics.result(state).items()
                            if k != "num_examples"})
            if self.task.kind == TaskKind.SINGLE_LABEL:
                per_example[f"{name}/correct"] = metrics.per_example(state)["correct"]
        for name, parts in self.scores.items():
            values = np.concatenate(parts)
            per_example[name] = values
            finite = np.isfinite(values)
            if not finite.all():
                self.diagnostic_failures[name] = (
                    f"{int((~finite).sum())} of {len(values)} per-example values are not finite;"
                    f" left out of scores/{name}"
                )
            if finite.any():
                scalars[f"scores/{name}"] = float(values[finite].mean())
        return scalars, per_example


class _Loop:
    def __init__(self, stream: Stream, learner: Learner, options: RunOptions, mesh: Mesh):
        self.stream, self.learner, self.options, self.mesh = stream, learner, options, mesh
        self.workdir = Path(options.workdir).absolute()
        self.data = DataAccess(options.data_dir, show_progress=options.show_progress)
        self.is_writer = jax.process_index() == 0
        (self.workdir / "predictions").mkdir(parents=True, exist_ok=True)
        self.checkpointer = Checkpointer(self.workdir / "checkpoints")
        self._split_targets: dict[tuple[str, str], np.ndarray] = {}

    # -- events ------------------------------------------------------------------------------

    def _train(self, index: int, event: TrainingEvent, state,
               loop: LoopState) -> tuple[Any, dict]:
        pending = {"resume": loop.resumes(index)}

        def save(mid_event, notes):
            now = dataclasses.replace(loop, mid_event_index=index, mid_event_notes=notes)
            self.checkpointer.save(state, now.to_dict(), mid_event)

        def restore(template):
            if not pending["resume"]:
                return None
            pending["resume"] = False
            pending["restored"] = True
            log.info("Resuming event %d (%s) from its mid-event checkpoint.", index,
                     event.task.key)
            return self.checkpointer.restore_mid_event(template), loop.mid_event_notes

        ctx = TrainContext(
            data=self.data.open,
            mesh=self.mesh,
            save_checkpoint=save,
            restore_checkpoint=restore,
            checkpoint_every=self.options.checkpoint_every,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            show_progress=self.options.show_progress,
            metrics_writer=self._step_writer(loop),
            data_dir=self.options.data_dir,
        )
        out = self.learner.train(event, state, ctx)
        info = dict(out.info)
        # The step a mid-task checkpoint resumed training at, 0 for a task trained from its
        # start (None: restored, but the learner did not say from which step).
        info.setdefault("resumed_from_step", None if pending.get("restored") else 0)
        record = {
            "event": "train",
            "resources": out.resources.as_dict(),
            "info": info,
            "status": "diverged" if out.info.get("diverged_at_step") else "ok",
        }
        return out.state, record

    def _step_writer(self, loop: LoopState) -> Any:
        """The writer's train_step on the stream's step axis (steps of earlier events first)."""
        writer = self.options.metrics_writer
        if writer is None or not self.is_writer:
            return None
        offset = loop.resources.train_steps
        return lambda step, scalars: writer.train_step(offset + step, scalars)

    def _targets(self, task, split: str, source) -> np.ndarray:
        """The split's labels by example index, read once per split without decoding images."""
        key = (task.key, split)
        if key not in self._split_targets:
            rows: list = []
            for start in range(0, len(source), _TARGET_CHUNK):
                chunk = range(start, min(start + _TARGET_CHUNK, len(source)))
                rows.extend(source.targets(r) for r in source.read_records(chunk))
            self._split_targets[key] = np.asarray(rows)
        return self._split_targets[key]

    def _predict(self, index: int, event: PredictionEvent, state) -> tuple[dict, ResourceUsage]:
        task = event.task
        source = self.data.open(task, event.split)

        def label_free_batches(batch_size: int, image_size: int) -> Iterator[dict]:
            it = loader.batches(
                source, batch_size=batch_size, image_size=image_size, shuffle=False, seed=0,
                augment=None, repeat=False, process_index=jax.process_index(),
                process_count=jax.process_count(),
            )
            for batch in it:
                yield {"image": batch["image"], "index": batch["index"], "mask": batch["mask"]}

        ctx = PredictContext(
            batches=label_free_batches,
            num_examples=len(source),
            mesh=self.mesh,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        scorer = _EventScorer(task, event.split, self.learner.name,
                              self._targets(task, event.split, source))
        out = self.learner.predict(event, state, ctx)
        record: dict[str, Any] = {"event": "predict", "status": "ok"}
        try:
            for prediction in out.predictions:
                scorer.add(prediction)
            scorer.check_complete()
        except EventFailure as e:
            close = getattr(out.predictions, "close", None)
            if close is not None:
                close()
            record.update(status="failed", reason=str(e),
                          metrics=metrics.failure_result(task.kind, len(source)))
            log.warning("Event %d failed (scored as error %.0f): %s", index,
                        metrics.FAILED_ERROR, e)
            return record, out.resources
        record["metrics"], per_example = scorer.results()
        if scorer.diagnostic_failures:
            record["diagnostic_failures"] = dict(scorer.diagnostic_failures)
            log.warning("Event %d: diagnostics left out: %s", index, scorer.diagnostic_failures)
        if self.is_writer:
            name = f"event_{index:04d}_{task.key}_{event.split}.npz"
            results.save_per_example(self.workdir / "predictions" / name, per_example)
            record["per_example_file"] = f"predictions/{name}"
        return record, out.resources

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        events = self.stream.events()
        self.data.check_stream(self.stream)
        restored = self.checkpointer.restore()
        if restored is None:
            state, loop = self.learner.init(), LoopState()
        else:
            state, loop = restored[0], LoopState.from_dict(restored[1])
            log.info("Resuming %s after %d of %d events.", self.workdir, loop.completed,
                     len(events))
        self._write(loop, len(events))
        for index, event in enumerate(events):
            if index < loop.completed:
                continue
            t0 = time.perf_counter()
            task = event.task
            base = {"schema_version": results.SCHEMA_VERSION, "event_index": index,
                    "task": task.key, "name": task.name,
                    "year": event.year, "kind": task.kind.value, "split": None, "final": False}
            if isinstance(event, TrainingEvent):
                state, record = self._train(index, event, state, loop)
                used = ResourceUsage.from_dict(record["resources"])
            else:
                base.update(split=event.split, final=event.final)
                record, used = self._predict(index, event, state)
                record["resources"] = used.as_dict()
            resources = loop.resources + used
            record = {**base, **record, "cumulative_train_flops": resources.train_flops,
                      "seconds": time.perf_counter() - t0}
            loop = LoopState(completed=index + 1, records=(*loop.records, record),
                             resources=resources)
            self.checkpointer.save(state, loop.to_dict())
            self._write(loop, len(events))
            if self.options.metrics_writer is not None and self.is_writer:
                self.options.metrics_writer.event(record)
        self.checkpointer.close()
        return self._write(loop, len(events))

    def _write(self, loop: LoopState, num_events: int) -> dict[str, Any]:
        records = list(loop.records)
        # Every field of summary.json is documented in WORKSPACE.md ("Result files").
        summary = {"schema_version": results.SCHEMA_VERSION,
                   **metrics.run_summary(self.stream.name, records, loop.resources.as_dict(),
                                         num_events)}
        if self.is_writer:
            results.write_events(self.workdir / "events.jsonl", records)
            results.write_tasks_csv(self.workdir / "tasks.csv", records)
            results.write_json(self.workdir / "summary.json", summary)
        return summary


def run(stream: Stream, learner: Learner, options: RunOptions, mesh: Mesh) -> dict[str, Any]:
    return _Loop(stream, learner, options, mesh).run()
