"""Alias of `python -m nevis.prepare` (kept for existing scripts and docs)."""

from __future__ import annotations

import sys

from nevis.prepare import main

if __name__ == "__main__":
    sys.exit(main())
