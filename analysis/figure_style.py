"""How every figure of the reproduction looks and is saved: a paper's column (3.5 in wide,
7 pt text), PNG at 200 dpi and PDF, and the one rule for where an interval is drawn.

Shared by analysis.figures (the studies' figures) and analysis.verdicts (the claims' forest
plot), so that both read alike.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.stats import MIN_RUNS_FOR_INTERVAL  # noqa: E402

COLUMN_WIDTH = 3.5  # inches; two columns or fewer per figure keep to it
PANEL_HEIGHT = 1.8
DPI = 200
RC = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 7,
      "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
      "axes.linewidth": 0.6, "lines.linewidth": 1.0, "lines.markersize": 3,
      "xtick.major.width": 0.6, "ytick.major.width": 0.6, "pdf.fonttype": 42,
      "savefig.dpi": DPI}


@contextmanager
def paper_style():
    """Seaborn's ticks style with 7 pt text and embedded TrueType fonts in PDFs."""
    with sns.axes_style("ticks"), plt.rc_context(RC):
        yield


def has_interval(n: float) -> bool:
    """Whether a cell of n completed runs gets an interval (stats.INTERVAL_RULE)."""
    return n >= MIN_RUNS_FOR_INTERVAL


def no_interval_note(ns: Iterable[float]) -> str:
    """'n = 2: no interval' for the run counts below the rule's minimum ('' if none)."""
    small = sorted({int(n) for n in ns if 0 < n < MIN_RUNS_FOR_INTERVAL})
    return f"n = {', '.join(map(str, small))}: no interval" if small else ""


def add_no_interval_note(ax, ns: Iterable[float]) -> str:
    """Say which cells were drawn without an interval, as a legend entry of `ax` (no handle,
    just the words), so that the figure's legend carries it. Call before the legend is made."""
    note = no_interval_note(ns)
    if note:
        ax.plot([], [], linestyle="none", label=f"{note} (intervals need n ≥ "
                                                f"{MIN_RUNS_FOR_INTERVAL})")
    return note


def save_figure(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """`stem`.png (200 dpi) and `stem`.pdf; the figure is closed afterwards."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    with paper_style():
        for path in paths:
            fig.savefig(path, dpi=DPI, metadata={"Software": None} if path.suffix == ".png"
                        else {"Creator": None, "Producer": None, "CreationDate": None})
    plt.close(fig)
    return paths


def png_bytes(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes (for embedding in an HTML page); the figure is closed."""
    buffer = io.BytesIO()
    with paper_style():
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def placeholder_figure(message: str):
    """A small figure that says why there is nothing to show."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=8)
    return fig
