"""Figures: learning curves of one trial (train vs validation vs test, best epoch marked).

Drawn with matplotlib's object API (no pyplot state), so a figure can be rendered from a
background thread while the next trial trains.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

SET_STYLE = {"train": ("#1f77b4", "-"), "val": ("#d62728", "-"), "test": ("#7f7f7f", "--")}


def loss_ceiling(values: list[float]) -> float | None:
    """An upper y-limit that keeps a diverged tail from flattening the rest of a loss curve:
    the largest finite value, unless it exceeds ten times the median."""
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return None
    return min(finite[-1], 10 * finite[len(finite) // 2]) * 1.05


def draw_curves(ax_pair: Any, history: list[dict[str, Any]], best_epoch: int) -> None:
    """Loss (left) and accuracy (right) per epoch for every set in ``history``."""
    epochs = [r["epoch"] for r in history]
    for ax, metric in zip(ax_pair, ("loss", "accuracy"), strict=True):
        values: list[float] = []
        for name, (color, style) in SET_STYLE.items():
            key = f"{name}_{metric}"
            if history and key in history[0]:
                series = [r[key] for r in history]
                values += series
                ax.plot(epochs, series, style, color=color, label=name, linewidth=1.6)
        if best_epoch:
            ax.axvline(best_epoch, color="#2ca02c", linestyle=":", linewidth=1.2,
                       label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        top = loss_ceiling(values) if metric == "loss" else None
        if top:
            ax.set_ylim(0, top)
    ax_pair[1].legend(loc="lower right", fontsize=8)


def learning_curves(history: list[dict[str, Any]], best_epoch: int, title: str,
                    path: str | Path) -> Path:
    """Save the learning curves of one trial as a PNG."""
    fig = Figure(figsize=(9, 3.4))
    ax_pair = fig.subplots(1, 2)
    draw_curves(ax_pair, history, best_epoch)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.89, wspace=0.22)
    fig.savefig(path, dpi=80)
    return Path(path)
