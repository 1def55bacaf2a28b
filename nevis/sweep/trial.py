"""One sweep trial: a `python -m nevis.run` process, watched and reported to Ray Tune.

The trial's run directory is `<sweep>/trials/<trial name>`, so a trial resumes exactly as a
run does. While the process runs, every new prediction event of the scored split in its
events.jsonl is reported to Tune with the stream's scores so far (what early stopping
compares); when it ends, the run's summary.json is reported. A finished run is reported
without starting anything, which is how a re-launched sweep skips finished trials.

A process killed by a signal (kill -9, out of memory, a lost node) raises a retryable error:
Ray Tune restarts the trial (`--max_failures`) and the run resumes from its checkpoint. A run
that exits with an error fails the same way again, so a restarted trial re-raises the
recorded error without running (`--retry_failed` on a re-launch clears it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from nevis import configs, metrics
from nevis.sweep import spec as spec_lib
from nevis.sweep.spec import METRICS

STATE_FILE = "sweep_trial.json"  # in the trial's run directory: attempts, pid, failure
LOG_FILE = "run.log"  # the run's stdout and stderr
CPU_LEASES = Path(tempfile.gettempdir()) / "nevis-cpu-leases"


class TrialFailed(RuntimeError):
    """The trial's run did not finish; the message is its error."""


@dataclasses.dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares (sent to Ray workers with the trainable)."""

    sweep_dir: str
    learner: str
    stream: str
    run_flags: tuple[str, ...]  # for every trial: --data_dir, the sweep's --config.* flags, …
    split: str  # the scored split whose scores are reported
    fixed_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # get_sweep's
    cpus_per_trial: float = 1.0
    pin_cpus: bool = True
    tensorboard: bool = True
    env: tuple[tuple[str, str], ...] = ()  # NEVIS_*/JAX_*/XLA_* of the sweep's process
    poll_seconds: float = 1.0


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_events(workdir: Path) -> list[dict[str, Any]]:
    """events.jsonl (rewritten atomically by the run after every event)."""
    try:
        text = (workdir / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value is not None else math.nan


def split_scores(scores: Mapping[str, Any]) -> dict[str, float]:
    """Every optimisable field of a split's summary, NaN where not (yet) defined, so that
    every report carries the sweep's metric (Ray Tune requires it)."""
    return {name: _number(scores.get(name)) for name in METRICS}


@contextlib.contextmanager
def lease_cpus(count: float) -> Iterator[list[int] | None]:
    """Holds `count` CPUs of this machine for the trial's lifetime, or yields None.

    Ray Tune decides how many trials run on a node (by their CPU resources); this only picks
    *which* CPUs, so that two trials pinned to one CPU each do not share one. A CPU is held
    by an exclusive lock on a file per CPU, which the kernel releases when the holder exits,
    however it exits. No pinning for fractional counts or when the CPUs are all held.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if count != int(count) or not 1 <= count < len(allowed):
        yield None
        return
    CPU_LEASES.mkdir(parents=True, exist_ok=True)
    held: list[tuple[int, Any]] = []
    try:
        for cpu in allowed:
            handle = (CPU_LEASES / f"cpu{cpu}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            held.append((cpu, handle))
            if len(held) == count:
                break
        yield [cpu for cpu, _ in held] if len(held) == count else None
    finally:
        for _, handle in held:
            handle.close()


class TrialRun:
    """Runs (or resumes, or skips) one trial and reports its progress through `report`."""

    def __init__(self, settings: TrialSettings, name: str, overrides: Mapping[str, Any]):
        self.settings, self.name, self.overrides = settings, name, dict(overrides)
        sweep_dir = Path(settings.sweep_dir)
        self.workdir = sweep_dir / "trials" / name
        self.tensorboard_dir = sweep_dir / "tensorboard" / name
        self.state_file = self.workdir / STATE_FILE
        self.reported = 0  # prediction events of the scored split reported so far

    def command(self, cpus: list[int] | None) -> list[str]:
        s = self.settings
        learner = str(Path(s.learner).resolve()) if s.learner.endswith(".py") else s.learner
        overrides = {**s.fixed_overrides, **self.overrides}  # the trial's own values win
        flags = [f"--learner={learner}", f"--stream={s.stream}", f"--workdir={self.workdir}",
                 "--noprogress", *s.run_flags, *spec_lib.override_flags(overrides)]
        if s.tensorboard:
            flags.append(f"--tensorboard_dir={self.tensorboard_dir}")
        child = [f"--parent={os.getpid()}"] + ([f"--cpus={','.join(map(str, cpus))}"]
                                               if cpus else [])
        return [sys.executable, "-m", "nevis.sweep.child", *child, "--", *flags]

    def _report_new_events(self, report: Callable[[dict], None]) -> None:
        records = read_events(self.workdir)
        scored = [r for r in records if r["event"] == "predict" and not r["final"]
                  and r["split"] == self.settings.split]
        # After a restart the run's records are reported again from the first: Tune counts
        # a restarted trial's iterations afresh.
        for i in range(self.reported, len(scored)):
            event = scored[i]
            upto = records[:records.index(event) + 1]
            scores = metrics.stream_summary(upto).get(self.settings.split, {})
            report({**split_scores(scores), "task": event["task"],
                    "task_error": _number(metrics.scored_metrics(event).get("error")),
                    "tasks_done": i + 1, "events_completed": len(upto), "complete": False})
        self.reported = len(scored)

    def final_result(self) -> dict[str, Any]:
        summary = read_json(self.workdir / "summary.json")
        resources = summary.get("resources", {})
        return {**split_scores(summary.get("splits", {}).get(self.settings.split, {})),
                "events_completed": summary.get("events_completed"),
                "complete": bool(summary.get("complete")),
                "train_flops": resources.get("train_flops"),
                "total_flops": resources.get("total_flops")}

    def is_finished(self) -> bool:
        return (bool(read_json(self.workdir / "summary.json").get("complete"))
                and (self.workdir / "config.json").exists())

    def run(self, report: Callable[[dict], None]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = read_json(self.state_file)
        failure = state.get("failure")
        if failure and not failure.get("retryable"):
            raise TrialFailed(failure["error"])  # it would fail the same way again
        if self.is_finished():  # a re-launched sweep, or a retry after the run completed
            self._report_new_events(report)
            report(self.final_result())
            return
        state.update(name=self.name, overrides=self.overrides,
                     attempts=int(state.get("attempts", 0)) + 1, failure=None,
                     returncode=None, ended=None)
        env = {**os.environ, **dict(self.settings.env)}
        with lease_cpus(self.settings.cpus_per_trial) as cpus:
            command = self.command(cpus if self.settings.pin_cpus else None)
            with (self.workdir / LOG_FILE).open("a") as log:
                log.write(f"\n# attempt {state['attempts']}: {' '.join(command)}\n")
                log.flush()
                start = time.time()
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=configs.REPO_ROOT, env=env)
                state.update(pid=proc.pid, cpus=cpus, started=start,
                             first_started=state.get("first_started", start))
                write_json(self.state_file, state)
                try:
                    while proc.poll() is None:
                        self._report_new_events(report)
                        try:  # returns as soon as the run ends: the next trial waits on it
                            proc.wait(timeout=self.settings.poll_seconds)
                        except subprocess.TimeoutExpired:
                            pass
                finally:
                    if proc.poll() is None:  # stopped by Tune (early stopping) or an error
                        proc.kill()
                        proc.wait()
                    state.update(returncode=proc.returncode, ended=time.time(),
                                 wall_seconds=state.get("wall_seconds", 0.0) + time.time() - start)
                    write_json(self.state_file, state)
        self._report_new_events(report)
        if proc.returncode == 0:
            report(self.final_result())
            return
        error = self._error_message(proc.returncode)
        state["failure"] = {"error": error, "retryable": proc.returncode < 0}
        write_json(self.state_file, state)
        raise TrialFailed(error)

    def _error_message(self, returncode: int) -> str:
        if returncode < 0:
            return (f"the run's process was killed by signal {-returncode}; restarting the "
                    f"trial resumes it from its last checkpoint (log: {self.workdir / LOG_FILE})")
        lines = [line for line in (self.workdir / LOG_FILE).read_text().splitlines()
                 if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        last = errors[-1] if errors else (lines[-1] if lines else "no output")
        return f"exit {returncode}: {last.strip()}"


def trainable(config: dict[str, Any], settings: TrialSettings) -> None:
    """The Ray Tune function trainable: one trial per call, named by the sweep."""
    from ray import tune

    TrialRun(settings, tune.get_context().get_trial_name(), config["overrides"]).run(tune.report)
