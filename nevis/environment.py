"""The environment loop: stream → learner → metrics → results. The only writer of results.

State between events is (completed event count, learner state, event records, resources); it
is checkpointed after every event and every `checkpoint_every` training steps, so a killed
run resumes where it stopped and ends with the same results as an uninterrupted one.
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
    ResourceUsage,
    TrainContext,
)
from nevis.streams import PredictionEvent, Stream, TrainingEvent
from nevis.tasks import TaskKind

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    workdir: Path
    data_dir: Path
    checkpoint_every: int = 200
    show_progress: bool = True


def _label_key(kind: TaskKind) -> str:
    return "label" if kind == TaskKind.SINGLE_LABEL else "labels"


class _Loop:
    def __init__(self, stream: Stream, learner: Learner, options: RunOptions, mesh: Mesh):
        self.stream, self.learner, self.options, self.mesh = stream, learner, options, mesh
        self.workdir = Path(options.workdir).absolute()
        self.data = DataAccess(options.data_dir, show_progress=options.show_progress)
        self.is_writer = jax.process_index() == 0
        (self.workdir / "predictions").mkdir(parents=True, exist_ok=True)
        self.checkpointer = Checkpointer(self.workdir / "checkpoints")

    # -- events ------------------------------------------------------------------------------

    def _train(self, index: int, event: TrainingEvent, state, meta) -> tuple[Any, dict]:
        resume = meta.get("has_mid_event") and meta.get("event_index") == index
        pending = {"resume": bool(resume)}

        def save(mid_event, notes):
            meta_now = {**meta, "event_index": index, "mid_event_notes": notes}
            self.checkpointer.save(state, meta_now, mid_event)

        def restore(template):
            if not pending["resume"]:
                return None
            pending["resume"] = False
            log.info("Resuming event %d (%s) from its mid-event checkpoint.", index,
                     event.task.key)
            return self.checkpointer.restore_mid_event(template), meta.get("mid_event_notes", {})

        ctx = TrainContext(
            data=self.data.open,
            mesh=self.mesh,
            save_checkpoint=save,
            restore_checkpoint=restore,
            checkpoint_every=self.options.checkpoint_every,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            show_progress=self.options.show_progress,
        )
        out = self.learner.train(event, state, ctx)
        record = {
            "event": "train",
            "resources": out.resources.as_dict(),
            "info": dict(out.info),
            "status": "diverged" if out.info.get("diverged_at_step") else "ok",
        }
        return out.state, record

    def _predict(self, index: int, event: PredictionEvent, state) -> tuple[dict, ResourceUsage]:
        task = event.task
        source = self.data.open(task, event.split)
        labels_queue: collections.deque = collections.deque()

        def label_free_batches(batch_size: int, image_size: int) -> Iterator[dict]:
            it = loader.batches(
                source, batch_size=batch_size, image_size=image_size, shuffle=False, seed=0,
                augment=None, repeat=False, process_index=jax.process_index(),
                process_count=jax.process_count(),
            )
            for batch in it:
                targets = {k: v for k, v in batch.items() if k != "image"}
                labels_queue.append(parallel.gather_rows(targets))
                yield {"image": batch["image"], "index": batch["index"], "mask": batch["mask"]}

        ctx = PredictContext(
            batches=label_free_batches,
            num_examples=len(source),
            mesh=self.mesh,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        out = self.learner.predict(event, state, ctx)
        main = metrics.init(task.kind, task.num_classes)
        extras: dict[str, metrics.State] = {}
        scores: dict[str, list[np.ndarray]] = collections.defaultdict(list)
        key = _label_key(task.kind)
        record: dict[str, Any] = {"event": "predict", "status": "ok"}
        try:
            for prediction in out.predictions:
                if not labels_queue:
                    raise RuntimeError(
                        f"Learner {self.learner.name!r} yielded more predictions than batches."
                    )
                t = labels_queue.popleft()
                main = metrics.update(main, t[key], prediction.logits, t["mask"], t["index"])
                for name, logits in prediction.extra_logits.items():
                    extras.setdefault(name, metrics.init(task.kind, task.num_classes))
                    extras[name] = metrics.update(extras[name], t[key], logits, t["mask"],
                                                  t["index"])
                for name, value in prediction.scores.items():
                    scores[name].append(np.asarray(value)[t["mask"]])
            record["metrics"] = metrics.result(main)
        except FloatingPointError as e:
            record.update(status="failed", reason=f"{e} (task {task.key}, split {event.split})")
            log.warning("Event %d: %s", index, record["reason"])
            return record, out.resources
        for name, state_ in extras.items():
            record["metrics"].update(
                {f"{name}/{k}": v for k, v in metrics.result(state_).items() if k != "num_examples"}
            )
        per_example = {k: v for k, v in metrics.per_example(main).items()}
        for name, parts in scores.items():
            values = np.concatenate(parts)
            per_example[name] = values
            finite = values[np.isfinite(values)]
            record["metrics"][f"scores/{name}"] = float(finite.mean()) if finite.size else None
        for name, state_ in extras.items():
            if task.kind == TaskKind.SINGLE_LABEL:
                per_example[f"{name}/correct"] = metrics.per_example(state_)["correct"]
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
            state = self.learner.init()
            meta: dict[str, Any] = {"completed": 0, "records": [], "resources": {}}
        else:
            state, meta = restored
            log.info("Resuming %s after %d of %d events.", self.workdir, meta["completed"],
                     len(events))
        resources = ResourceUsage(**{
            k: v for k, v in meta["resources"].items() if k != "total_flops"
        })
        records: list[dict[str, Any]] = meta["records"]
        self._write(records, resources, len(events))
        for index, event in enumerate(events):
            if index < meta["completed"]:
                continue
            t0 = time.perf_counter()
            task = event.task
            base = {"event_index": index, "task": task.key, "name": task.name,
                    "year": event.year, "kind": task.kind.value, "split": None, "final": False}
            if isinstance(event, TrainingEvent):
                state, record = self._train(index, event, state, meta)
                resources = resources + ResourceUsage(**{
                    k: v for k, v in record["resources"].items() if k != "total_flops"
                })
            else:
                base.update(split=event.split, final=event.final)
                record, used = self._predict(index, event, state)
                resources = resources + used
                record["resources"] = used.as_dict()
            record = {**base, **record, "cumulative_train_flops": resources.train_flops,
                      "seconds": time.perf_counter() - t0}
            records.append(record)
            meta = {"completed": index + 1, "records": records,
                    "resources": resources.as_dict()}
            self.checkpointer.save(state, meta)
            self._write(records, resources, len(events))
        self.checkpointer.close()
        return self._write(records, resources, len(events))

    def _write(self, records, resources: ResourceUsage, num_events: int) -> dict[str, Any]:
        summary = build_summary(self.stream, records, resources, num_events)
        if self.is_writer:
            results.write_events(self.workdir / "events.jsonl", records)
            results.write_tasks_csv(self.workdir / "tasks.csv", records)
            results.write_json(self.workdir / "summary.json", summary)
        return summary


def build_summary(stream: Stream, records, resources: ResourceUsage, num_events: int) -> dict:
    ok = [r for r in records if r["status"] == "ok"]
    predictions = [r for r in ok if r["event"] == "predict"]
    summary: dict[str, Any] = {
        "stream": stream.name,
        "complete": len(records) == num_events,
        "events_completed": len(records),
        "events_total": num_events,
        "splits": metrics.stream_summary(ok),
        "resources": resources.as_dict(),
        "failed_events": [
            {k: r.get(k) for k in ("event_index", "task", "split", "status", "reason")}
            for r in records if r["status"] != "ok"
        ],
        "diverged_tasks": {
            r["task"]: r["info"].get("diverged_at_step") for r in records
            if r["event"] == "train" and r["status"] == "diverged"
        },
        "timing": {"seconds": sum(r["seconds"] for r in records)},
    }
    # Per-example scores a learner reports (e.g. path independence), averaged per event as
    # `scores/<name>`: their stream mean and correlation with per-event accuracy.
    during = [r for r in predictions if not r["final"]]
    for name in sorted({k for r in during for k in r["metrics"] if k.startswith("scores/")}):
        pairs = [(r["metrics"][name], 1 - r["metrics"]["error"]) for r in during
                 if r["metrics"].get(name) is not None]
        entry: dict[str, Any] = {"mean": float(np.mean([p[0] for p in pairs])) if pairs else None}
        if len(pairs) >= 3 and np.std([p[0] for p in pairs]) > 0:
            entry["pearson_with_accuracy"] = float(np.corrcoef(np.array(pairs).T)[0, 1])
        summary.setdefault("diagnostics", {})[name.removeprefix("scores/")] = entry
    return summary


def run(stream: Stream, learner: Learner, options: RunOptions, mesh: Mesh) -> dict[str, Any]:
    return _Loop(stream, learner, options, mesh).run()
