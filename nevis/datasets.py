"""Dataset look-up for a stream: checks, builds embedded data on first use, opens splits."""

from __future__ import annotations

from pathlib import Path

from nevis.data import embedded, storage_format, storage_reader
from nevis.data.storage_format import DatasetError
from nevis.data.storage_reader import SplitSource
from nevis.streams import Stream
from nevis.tasks import TaskSpec


class MissingDataError(Exception):
    """Raised before any training when datasets of the stream are not prepared."""


class DataAccess:
    def __init__(self, data_dir: Path, show_progress: bool = True):
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.show_progress = show_progress
        self._open: dict[tuple[str, str], SplitSource] = {}

    def check_stream(self, stream: Stream) -> None:
        """Builds missing embedded datasets; fails with one message for all other missing ones.

        Every split the stream reads is opened, so a corrupt or mismatched dataset stops the
        run here, before any work, rather than halfway through.
        """
        missing = []
        for task in stream.unique_tasks():
            if task.source == "embedded":  # built (or rebuilt at a new version) on first use
                embedded.prepare_embedded(task, self.data_dir, progress=self.show_progress)
            elif not storage_format.is_prepared(task.key, self.data_dir):
                missing.append(task)
        if missing:
            lines = [f"  {t.key:28s} {t.name} ({t.year}, source: {t.source})" for t in missing]
            keys = ",".join(t.key for t in missing)
            raise MissingDataError(
                f"{len(missing)} dataset(s) of stream {stream.name!r} are not prepared in "
                f"{self.data_dir}:\n" + "\n".join(lines) + "\nPrepare them with "
                f"`python -m nevis.prepare --dataset={keys} --data_dir={self.data_dir}` "
                "(it reports what each needs), or pick another data directory with "
                "--data_dir / $NEVIS_DATA_DIR."
            )
        for task in stream.unique_tasks():
            for split in ("train", "dev", *stream.prediction_splits):
                self.open(task, split)

    def open(self, task: TaskSpec, split: str) -> SplitSource:
        key = (task.key, split)
        if key not in self._open:
            version = (
                embedded.embedded_dataset(task.key).version if task.source == "embedded" else None
            )
            self._open[key] = storage_reader.open_split(task, split, self.data_dir, version=version)
        return self._open[key]


__all__ = ["DataAccess", "DatasetError", "MissingDataError"]
