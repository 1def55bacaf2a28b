"""The NEVIS'22 dataset handlers: one module per dataset, found by scanning this package.

Each module `nevis/data/handlers/<key>.py` defines `HANDLER` (a `base.Handler`, or a TFDS-backed
handler from `tfds_backed`); adding a dataset is adding a module. Modules whose names start with
an underscore, and `base`/`tfds_backed`, hold shared code and no handler.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from nevis.data.handlers.base import BuildContext, Built, Handler

__all__ = ["BuildContext", "Built", "Handler", "all_handlers", "get_handler"]

_SHARED = {"base", "tfds_backed"}


@functools.cache
def all_handlers() -> dict[str, Handler]:
    """Every handler by catalog key, in module-name order."""
    found: dict[str, Handler] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _SHARED:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        handler = getattr(module, "HANDLER", None)
        if handler is None:
            raise ImportError(f"{module.__name__} defines no HANDLER.")
        if handler.key in found:
            raise ImportError(f"Two handlers for {handler.key!r}: {module.__name__} and another.")
        found[handler.key] = handler
    return found


def get_handler(key: str) -> Handler:
    handlers = all_handlers()
    if key not in handlers:
        raise KeyError(f"No handler for {key!r}; handlers exist for: {', '.join(handlers)}.")
    return handlers[key]
