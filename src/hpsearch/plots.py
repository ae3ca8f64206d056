"""Figures: learning curves of one trial (train vs validation vs test, best epoch marked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

SET_STYLE = {"train": ("#1f77b4", "-"), "val": ("#d62728", "-"), "test": ("#7f7f7f", "--")}


def learning_curves(history: list[dict[str, Any]], best_epoch: int, title: str,
                    path: str | Path | None = None, ax_pair: Any = None) -> Any:
    """Loss and accuracy per epoch for every set in ``history``; returns the figure (saved to
    ``path`` as PNG when given). ``ax_pair`` draws into two existing axes instead."""
    epochs = [r["epoch"] for r in history]
    fig = None
    if ax_pair is None:
        fig, ax_pair = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    for ax, metric in zip(ax_pair, ("loss", "accuracy"), strict=True):
        for name, (color, style) in SET_STYLE.items():
            key = f"{name}_{metric}"
            if history and key in history[0]:
                ax.plot(epochs, [r[key] for r in history], style, color=color, label=name,
                        linewidth=1.6)
        if best_epoch:
            ax.axvline(best_epoch, color="#2ca02c", linestyle=":", linewidth=1.2,
                       label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if metric == "loss":
            finite = [r[f"{n}_loss"] for r in history for n in SET_STYLE
                      if f"{n}_loss" in r and r[f"{n}_loss"] < float("inf")]
            if finite:  # keep a diverged tail from flattening the rest of the curve
                ax.set_ylim(0, min(max(finite), 4 * sorted(finite)[len(finite) // 2]) * 1.05)
    ax_pair[1].legend(loc="lower right", fontsize=8)
    if fig is not None:
        fig.suptitle(title, fontsize=10)
        if path is not None:
            fig.savefig(path, dpi=90)
            plt.close(fig)
    return fig
