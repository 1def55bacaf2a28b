"""TensorBoard scalars for a run (`python -m nevis.run --tensorboard_dir=DIR`), via tensorboardX.

Off by default; tensorboardX is imported only when a writer is made. What is written:

- `train/<name>` at every logged training step (`learner.log_every`): the step's loss and the
  learner's other step outputs (solver statistics, …); `train/dev_error` and
  `train/best_dev_error` at every validation. The x axis is the stream's training step (steps
  of earlier tasks included), so the tasks of a stream follow one another.
- `<split>/<metric>` per prediction event (`<split>_final/<metric>` for the end-of-stream
  re-evaluation), `train_event/<info>` per training event and `resources/<name>` (this event's
  compute, and `cumulative_train_flops`), all against the event index.

A resumed run appends to the same directory; the steps it redoes after its last checkpoint
appear twice (TensorBoard shows both). Only process 0 of a multi-process run writes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol


class MetricsWriter(Protocol):
    """What the loop and the training loop call; `nevis.tensorboard.TensorBoardWriter` is one."""

    def train_step(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Scalars of one training step; `step` counts training steps over the whole stream."""

    def event(self, record: Mapping[str, Any]) -> None:
        """One finished event's record (as in events.jsonl)."""

    def close(self) -> None: ...


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class TensorBoardWriter:
    """Writes a run's scalars into one TensorBoard run directory (`logdir`)."""

    def __init__(self, logdir: str | Path):
        from tensorboardX import SummaryWriter  # only when asked for: not a core dependency

        Path(logdir).mkdir(parents=True, exist_ok=True)
        self.logdir = Path(logdir)
        self._writer = SummaryWriter(str(logdir), flush_secs=30)

    def _scalars(self, prefix: str, scalars: Mapping[str, Any], step: int) -> None:
        for name, value in scalars.items():
            value = _finite(value)
            if value is not None:
                self._writer.add_scalar(f"{prefix}/{name}", value, step)

    def train_step(self, step: int, scalars: Mapping[str, Any]) -> None:
        self._scalars("train", scalars, step)

    def event(self, record: Mapping[str, Any]) -> None:
        index = int(record["event_index"])
        if record["event"] == "predict":
            prefix = f"{record['split']}_final" if record.get("final") else str(record["split"])
            self._scalars(prefix, record.get("metrics") or {}, index)
        else:
            self._scalars("train_event", record.get("info") or {}, index)
        self._scalars("resources", {**(record.get("resources") or {}),
                                    "cumulative_train_flops": record.get("cumulative_train_flops")},
                      index)
        self._writer.flush()  # one event is minutes of work: never lose it to a buffer

    def close(self) -> None:
        self._writer.close()


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar in `logdir`'s event files: tag → [(step, value, wall time)], file order.

    A small reader of the TFRecord framing (length, CRC, payload, CRC) with tensorboardX's
    protobuf, so tests and benchmarks need no TensorBoard install.
    """
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float, float]]] = {}
    for file in sorted(Path(logdir).glob("events.out.tfevents.*")):
        data = file.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            start = pos + 12
            if start + length + 4 > len(data):
                break  # a record still being written
            event = event_pb2.Event.FromString(data[start:start + length])
            pos = start + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append(
                        (int(event.step), float(value.simple_value), float(event.wall_time)))
    return out
