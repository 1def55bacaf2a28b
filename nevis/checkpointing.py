"""Environment checkpoints with orbax: learner state, mid-event state and loop metadata.

Each save is one orbax step directory written atomically (orbax commits it by rename), so a
run killed at any moment resumes from the last complete save.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

# orbax warnings that every save of ours triggers and that mean nothing is wrong; they would
# put a line per checkpoint in a run's log. Other warnings are kept.
HARMLESS_ORBAX_WARNINGS = (
    # A save whose tree holds no arrays (the learner state before its first task).
    "Skipping merge of OCDBT checkpoints: No per-process OCDBT checkpoint subdirs found",
)


class _DropHarmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in HARMLESS_ORBAX_WARNINGS)


def _quiet_orbax() -> None:
    absl_logger = logging.getLogger("absl")  # orbax logs through absl
    if not any(isinstance(f, _DropHarmless) for f in absl_logger.filters):
        absl_logger.addFilter(_DropHarmless())


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), tree)


def _savable(tree: Any) -> Any:
    """orbax stores arrays; numpy scalars become 0-d arrays."""
    return jax.tree.map(lambda x: np.asarray(x) if np.isscalar(x) else x, tree)


class Checkpointer:
    def __init__(self, directory: Path):
        _quiet_orbax()
        self._manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
        )
        self._count = self._manager.latest_step()
        self._count = -1 if self._count is None else self._count

    def save(self, learner_state: Any, meta: dict[str, Any], mid_event: Any = None) -> None:
        """Saves the learner state, JSON metadata and optionally a mid-event pytree."""
        items = {
            "learner": ocp.args.StandardSave(_savable(learner_state)),
            "meta": ocp.args.JsonSave(meta),
        }
        if mid_event is not None:
            items["mid_event"] = ocp.args.StandardSave(_savable(mid_event))
        self._count += 1
        self._manager.save(self._count, args=ocp.args.Composite(**items))
        self._manager.wait_until_finished()

    def restore(self) -> tuple[Any, dict[str, Any]] | None:
        """The latest (learner state, metadata), or None for a fresh work directory."""
        step = self._manager.latest_step()
        if step is None:
            return None
        out = self._manager.restore(
            step,
            args=ocp.args.Composite(
                learner=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()
            ),
        )
        learner = jax.tree.map(np.asarray, out["learner"])
        return learner, out["meta"]

    def restore_mid_event(self, template: Any) -> Any:
        step = self._manager.latest_step()
        out = self._manager.restore(
            step,
            args=ocp.args.Composite(mid_event=ocp.args.StandardRestore(_abstract(template))),
        )
        return out["mid_event"]

    def close(self) -> None:
        self._manager.close()
