"""Where notebooks put their figures, and how they save them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nevis.analysis.runs import parse_run_dirs


def output_dir_for(run_dirs: str | Path | Iterable[str | Path],
                   output_dir: str | Path | None = None) -> Path:
    """`output_dir`, or the first run directory's `figures/` folder; created if missing."""
    path = Path(output_dir) if output_dir else parse_run_dirs(run_dirs)[0] / "figures"
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, output_dir: str | Path, name: str, dpi: int = 120) -> Path:
    """Saves `fig` as `<output_dir>/<name>.png` and prints the path (the report collects it)."""
    path = Path(output_dir) / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    print(f"saved {path}")
    return path
