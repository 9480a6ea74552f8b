"""Figures written to files (histograms, loss curves): matplotlib without a display, as the
commands run on servers and in tests."""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot, set to draw into files only (the Agg backend, chosen before pyplot's
    first import)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path: Path, dpi: int) -> None:
    """Lay the figure out, write it to `path` (its folder made), and free it."""
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
