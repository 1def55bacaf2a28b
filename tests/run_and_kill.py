"""`python -m nevis.run` that SIGKILLs itself at a chosen point, for the resume tests.

    python tests/run_and_kill.py --kill_after_checkpoint=TASK:STEP  NEVIS_RUN_FLAGS...
    python tests/run_and_kill.py --kill_in_prediction=N             NEVIS_RUN_FLAGS...

The first kills the process right after the mid-task checkpoint of training step STEP of task
TASK is committed; the second once the N-th prediction event (counted from 1) has produced its
first prediction, before the loop sees it. The kill is exact, where a kill from outside at a
polled moment would land anywhere around it. The learner is the one the flags name, wrapped.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from collections.abc import Iterator

from nevis import learners
from nevis.learners.base import Learner, PredictOutput


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def killing(learner: Learner, after_checkpoint: tuple[str, int] | None,
            in_prediction: int | None) -> Learner:
    predictions_started = {"count": 0}

    def train(event, state, ctx):
        def save(mid_event, notes):
            ctx.save_checkpoint(mid_event, notes)  # returns once the checkpoint is committed
            if (event.task.key, int(mid_event["step"])) == after_checkpoint:
                _kill()

        return learner.train(event, state, dataclasses.replace(ctx, save_checkpoint=save))

    def predict(event, state, ctx):
        out = learner.predict(event, state, ctx)
        predictions_started["count"] += 1
        if predictions_started["count"] != in_prediction:
            return out

        def first_then_kill() -> Iterator:
            next(iter(out.predictions))
            _kill()
            yield  # never reached

        return PredictOutput(first_then_kill(), out.resources)

    return dataclasses.replace(learner, train=train, predict=predict)


def main() -> None:
    after_checkpoint, in_prediction, rest = None, None, [sys.argv[0]]
    for arg in sys.argv[1:]:
        if arg.startswith("--kill_after_checkpoint="):
            task, step = arg.split("=", 1)[1].split(":")
            after_checkpoint = (task, int(step))
        elif arg.startswith("--kill_in_prediction="):
            in_prediction = int(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    if after_checkpoint is None and in_prediction is None:
        sys.exit("give --kill_after_checkpoint=TASK:STEP or --kill_in_prediction=N")
    make = learners.make_learner
    learners.make_learner = lambda config: killing(make(config), after_checkpoint, in_prediction)
    sys.argv = rest
    from nevis import run

    run.main()


if __name__ == "__main__":
    main()
