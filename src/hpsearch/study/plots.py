"""Figures of a whole study, drawn by Optuna's own plots: the optimization history and the
parameter importances (the sweep logs them to its parent run; the report shows them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def study_plots(study: Any, out_dir: Path) -> list[tuple[str, str]]:
    """Optuna's optimization history and parameter importances as PNGs in ``out_dir``;
    returns (file name, caption) for each figure that could be drawn."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    plots: list[tuple[str, Any, str]] = [
        ("optimization_history.png", ovm.plot_optimization_history,
         "Objective value of every trial and the best so far")]
    if len(complete) >= 2:
        plots.append(("param_importances.png", ovm.plot_param_importances,
                      "Parameter importances (fANOVA over complete trials)"))
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are "experimental"
        for fname, fn, caption in plots:
            try:
                ax = fn(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importances when no parameter varied
            fig: Any = ax.figure
            fig.set_size_inches(7.5, 3.8)
            fig.tight_layout()
            fig.savefig(Path(out_dir) / fname, dpi=85)
            plt.close(fig)
            out.append((fname, caption))
    return out
