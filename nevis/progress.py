"""Progress bars that suit a terminal and a log file alike.

In a terminal a bar redraws in place. When stderr is not a terminal (a log file, a batch job,
CI) every redraw would become a line of the log, so there a bar prints a plain line at most
every NON_INTERACTIVE_INTERVAL seconds, plus its first and last state.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm

NON_INTERACTIVE_INTERVAL = 10.0  # seconds between progress lines in a log


def interactive(stream: TextIO | None = None) -> bool:
    """Whether progress written to `stream` (default stderr) is seen by a person redrawn."""
    if "notebook" in tqdm.__module__:  # tqdm.auto picked the Jupyter widget
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole lines."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self._stream.write(line + "\n")

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, …
        return getattr(self._stream, name)


def bar(*, enabled: bool = True, **kwargs: Any) -> tqdm:
    """`tqdm(disable=not enabled, **kwargs)`, throttled to a line every ~10 s when stderr is
    not a terminal. Usable as a context manager, like tqdm.

    Call `set_postfix(..., refresh=False)` on it: a forced refresh bypasses the throttle.
    """
    kwargs["disable"] = kwargs.get("disable", False) or not enabled
    stream = kwargs.pop("file", None) or sys.stderr
    if interactive(stream):
        return tqdm(file=stream, **kwargs)
    kwargs.update(
        file=_Lines(stream),
        mininterval=NON_INTERACTIVE_INTERVAL,
        maxinterval=max(NON_INTERACTIVE_INTERVAL, kwargs.get("maxinterval", 0.0)),
        leave=True,  # the last state stays as the bar's final line
        ascii=True,
        dynamic_ncols=False,
        ncols=100,
    )
    return tqdm(**kwargs)
