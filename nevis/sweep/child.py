"""A sweep trial's process: `python -m nevis.run` that dies with the Ray worker that started it.

    python -m nevis.sweep.child --parent=PID [--cpus=0,3] -- NEVIS_RUN_FLAGS...

Asks the kernel to SIGKILL this process when the thread that launched it exits (a stopped or
crashed trial must not leave a run writing into its directory while Ray retries it), pins the
process to `--cpus` (XLA sizes its CPU thread pool by the CPUs a process may use), then runs
`nevis.run` in-process. Imports nothing heavy before that: this is a trial's start-up.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not Linux: the trial's own cleanup is the only guard
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        sys.exit("nevis.sweep.child: the trial that started this run is gone.")


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("usage: python -m nevis.sweep.child --parent=PID [--cpus=0,1] -- RUN_FLAGS")
    split = argv.index("--")
    options = dict(a.removeprefix("--").split("=", 1) for a in argv[1:split])
    _die_with_parent(int(options["parent"]))
    if options.get("cpus"):
        os.sched_setaffinity(0, {int(c) for c in options["cpus"].split(",")})
    sys.argv = ["nevis.run", *argv[split + 1:]]
    from nevis import run

    run.main()


if __name__ == "__main__":
    main(sys.argv)
