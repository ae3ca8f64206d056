"""``hpsearch report NAME``: a static report of a study, for a person deciding what to try next.

Reads the study (Optuna storage: parameters, values, states, verdicts) and the runs (MLflow:
each trial's history.csv), writes ``reports/<name>/report.md`` with PNG figures beside it and a
self-contained ``reports/<name>/index.html`` (figures embedded), and logs both to the parent run.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from ..diagnosis.diagnostics import VERDICTS
from ..diagnosis.plots import draw_curves
from ..errors import StorageError
from ..search.reseed import table as reseed_table
from ..spec.schema import SweepSpec
from ..spec.space import hidden_sizes
from ..study.noise import accuracy_se, noise_floor
from ..study.plots import study_plots
from ..study.store import (
    StudyKey,
    TrialKey,
    join_storage_study,
    lost_trials,
    ranked,
    search_trials,
    study_spec,
)
from ..study.verdicts import refresh_verdicts, verdicts
from ..tracking.tracker import Tracker, make_tracker
from .advice import TOP, plan
from .render import Section, table, write_html, write_markdown

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
COLORS = {"good_fit": "#2ca02c", "overfitting": "#d62728", "underfitting": "#1f77b4",
          "undertrained": "#9467bd", "diverged": "#ff7f0e", "stalled": "#7f7f7f", "": "#bbbbbb"}
KEY_ORDER = ("learning_rate", "optimizer", "schedule", "n_layers", "hidden_size",
             "hidden_size_2", "dropout", "l2", "momentum", "batch_size")


def _units(t: FrozenTrial) -> int | None:
    sizes = hidden_sizes(t.params)
    return None if sizes is None else sum(sizes)


class Report:
    def __init__(self, name: str, storage_url: str | None, tracking_uri: str | None,
                 out_dir: Path) -> None:
        self.study = join_storage_study(name, storage_url)
        attrs = self.study.user_attrs
        self.spec: SweepSpec = study_spec(self.study)
        self.tracker: Tracker = make_tracker(tracking_uri or attrs.get(StudyKey.TRACKING_URI))
        self.parent = attrs.get(StudyKey.PARENT_RUN_ID)
        self.data = attrs.get(StudyKey.DATA, {})
        self.name, self.out = name, out_dir
        self.trials = self.study.get_trials(deepcopy=False)
        # the reseed trials repeat the top configurations with other seeds: the reseed table
        # shows them; the leaderboard, the figures and the advice are about the search
        self.search = search_trials(self.trials)
        self.complete = [t for t in self.search if t.state == TrialState.COMPLETE]
        self.ranked = ranked(self.study, self.search)
        self.metric = self.spec.objective.metric
        self._histories: dict[int, list[dict[str, float]]] = {}
        self.fits = verdicts(self.trials, self.spec)  # (verdict, summary) against the final study
        self.floor = noise_floor(self.ranked[0], self.metric, self.data.get("n_val")) \
            if self.ranked else None  # (value, how): the summary and the rules use the same
        self.changes = plan(self.spec, self.ranked, self.search, self.fits,
                            self.floor[0] if self.floor else 0.0)

    def _verdict(self, t: FrozenTrial) -> str:
        return self.fits.get(t.number, ("", ""))[0]

    # -- data ---------------------------------------------------------------------------------
    def history(self, t: FrozenTrial) -> list[dict[str, float]]:
        if t.number not in self._histories:
            run_id = self.tracker.trial_run_id(self.name, t.number)
            rows = self.tracker.trial_history(run_id) if run_id else []
            self._histories[t.number] = rows
        return self._histories[t.number]

    # -- figures --------------------------------------------------------------------------------
    def _save(self, fig: Figure, name: str) -> str:
        fig.savefig(self.out / name, dpi=85)
        return name

    def curves(self, trials: list[FrozenTrial], name: str, label: str) -> str | None:
        shown = [(t, h) for t in trials if (h := self.history(t))]
        if not shown:
            return None
        fig = Figure(figsize=(10, 2.9 * len(shown)))
        axes = fig.subplots(len(shown), 2, squeeze=False)
        for (t, h), pair in zip(shown, axes, strict=True):
            draw_curves(pair, h, int(t.user_attrs.get(TrialKey.BEST_EPOCH, 0)))
            value = f"{t.value:.4f}" if t.value is not None else t.state.name.lower()
            pair[0].set_title(f"trial {t.number}: {label.format(v=self._verdict(t) or '-')}, "
                              f"{self.metric} {value}", fontsize=9, loc="left")
        fig.tight_layout()
        return self._save(fig, name)

    def fit_map(self) -> str | None:
        done = [t for t in self.search if "fit.gap_at_best" in t.user_attrs]
        if len(done) < 2:
            return None
        panels = [("total hidden units", _units, True), ("dropout",
                   lambda t: t.params.get("dropout"), False),
                  ("L2 strength", lambda t: t.params.get("l2"), True)]
        panels = [p for p in panels if any(p[1](t) is not None for t in done)]
        if not panels:
            return None
        fig = Figure(figsize=(4 * len(panels), 3.4))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (label, get, log) in zip(axes, panels, strict=True):
            for verdict in ["", *VERDICTS]:
                pts = [(get(t), t.user_attrs[TrialKey.GAP_AT_BEST]) for t in done
                       if self._verdict(t) == verdict and get(t) is not None]
                if pts:
                    ax.scatter([x for x, _ in pts], [y for _, y in pts], s=22,
                               color=COLORS[verdict], label=verdict or "?", alpha=0.85)
            if log:
                from matplotlib.ticker import LogFormatterSciNotation, NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(LogFormatterSciNotation())
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_xlabel(label)
            ax.set_ylabel("train - val accuracy at best epoch")
            ax.grid(alpha=0.3)
        axes[-1].legend(fontsize=7, loc="best")
        fig.suptitle("Where the space over- and underfits (gap > 0: training ahead of validation)",
                     fontsize=10)
        fig.tight_layout()
        return self._save(fig, "fit_map.png")

    def lr_outcome(self) -> str | None:
        with_lr = [t for t in self.search if "learning_rate" in t.params and t.state.is_finished()]
        if len(with_lr) < 2:
            return None
        fig = Figure(figsize=(6.5, 3.6))
        ax = fig.subplots()
        values = [t.value for t in with_lr if t.value is not None]
        floor = min(values) if values else 0.0
        for verdict in ["", *VERDICTS]:
            pts = [(t.params["learning_rate"], t.value if t.value is not None else floor)
                   for t in with_lr if self._verdict(t) == verdict]
            if pts:
                ax.scatter([x for x, _ in pts], [y for _, y in pts], s=24,
                           color=COLORS[verdict], label=verdict or "no curve",
                           marker="x" if verdict in ("diverged", "stalled") else "o")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(self.metric + " (failed trials at the bottom)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title("Learning rate against outcome", fontsize=10)
        fig.tight_layout()
        return self._save(fig, "learning_rate.png")

    # -- sections -------------------------------------------------------------------------------
    def summary(self) -> Section:
        s = Section("Summary")
        states = Counter(t.state.name for t in self.trials)
        verdicts = Counter(self._verdict(t) for t in self.trials if self._verdict(t))
        d = self.data
        again = sum(TrialKey.RESEED_OF in t.user_attrs for t in self.trials)
        s.text.append(
            f"Study **{self.name}**: {len(self.trials)} trials "
            f"({', '.join(f'{n} {k.lower()}' for k, n in states.most_common())}), objective "
            f"`{self.metric}` ({self.study.direction.name.lower()}), dataset "
            f"`{self.spec.data.dataset}`" + (f" ({d['n_train']} train / {d['n_val']} validation"
                                             f" / {d['n_test']} test)" if d else "") + "." +
            (f" {again} of the trials are reseeds (the top configurations with more model "
             f"seeds: not counted in n_trials)." if again else ""))
        lost = lost_trials(self.trials)
        if lost:
            s.text.append(
                f"Lost to faults: {len(lost)} trial(s) (a signal, a dead worker or a lost "
                f"storage; " + ", ".join(f"{n} retried as {r}" for n, r in sorted(lost.items()))
                + "): retried with the same parameters, they do not count towards n_trials.")
        if self.ranked:
            b = self.ranked[0]
            test = b.user_attrs.get(TrialKey.TEST_ACCURACY_AT_BEST)
            s.text.append(
                f"Best: trial {b.number}, {self.metric} {b.value:.4f}" +
                (f", test accuracy at its best epoch {test:.4f}" if test is not None else "") +
                f", verdict **{self._verdict(b) or '-'}** "
                f"({self.fits.get(b.number, ('', ''))[1]}).")
        undiagnosed = len(self.trials) - sum(verdicts.values())
        floor = self.floor
        if floor is not None:
            b, sign = self.ranked[0], -1.0 if self.study.direction.name == "MAXIMIZE" else 1.0
            near = [t.number for t in self.ranked[1:]
                    if sign * (t.value - b.value) <= floor[0]]  # type: ignore[operator]
            s.text.append(f"Noise floor of the objective: ±{floor[0]:.4f} ({floor[1]}); "
                          f"{len(near)} other trial(s) lie within it of the best.")
        if self.study.user_attrs.get(StudyKey.STOPPED):
            s.text.append(f"Stopped early by `budget.stop`: "
                          f"{self.study.user_attrs[StudyKey.STOPPED]}.")
        s.text.append(table(["verdict", "trials"], [[v, verdicts[v]] for v in VERDICTS] +
                             ([["(none: failed or running)", undiagnosed]] if undiagnosed else [])))
        return s

    def leaderboard(self) -> Section:
        s = Section("Leaderboard")
        varied = [p.name for p in self.spec.space if p.type != "fixed"]
        keys = ([k for k in KEY_ORDER if k in varied] +
                [k for k in varied if k not in KEY_ORDER])[:7]
        rows = []
        for t in self.ranked[:10]:
            rows.append([t.number, t.value, t.user_attrs.get(TrialKey.TEST_ACCURACY_AT_BEST, ""),
                         self._verdict(t), t.user_attrs.get(TrialKey.EPOCHS_RUN, ""),
                         *[t.params.get(k, "") for k in keys]])
        s.text.append("The ten best complete trials of the search (reseed trials, which repeat "
                      "the top configurations with other seeds, are in their own table below). "
                      "`test` is the test accuracy at the trial's best epoch: shown, never used "
                      "to choose.")
        s.text.append(table(["trial", self.metric, "test", "verdict", "epochs", *keys], rows))
        return s

    def curve_sections(self) -> Section:
        s = Section("Learning curves")
        top = self.ranked[:3]
        name = self.curves(top, "curves_top.png", "top trial, {v}")
        if name:
            s.figures.append((name, "The best trials: loss and accuracy per epoch, train / "
                                    "validation / test, best epoch dotted"))
        examples = []
        for verdict in VERDICTS:
            pool = [t for t in self.trials if self._verdict(t) == verdict and t not in top]
            pool.sort(key=lambda t: (t.state != TrialState.COMPLETE, t.number))
            if pool:
                examples.append(pool[0])
        name = self.curves(examples, "curves_verdicts.png", "example of {v}")
        if name:
            s.figures.append((name, "One example of each verdict found in this study"))
        return s

    def fit_section(self) -> Section:
        s = Section("Over- and underfitting across the space")
        name = self.fit_map()
        if name:
            s.figures.append((name, "Train-validation gap at each trial's best epoch against "
                                    "model size and regularisation, coloured by verdict"))
        name = self.lr_outcome()
        if name:
            s.figures.append((name, "Where runs diverge or stall"))
        return s

    def health(self) -> tuple[Section, list[str]]:
        s = Section("Search-space health")
        warns: list[str] = []
        # the bound rule of advice.plan (shared with `hpsearch next`)
        warns += [t for c in self.changes for t in c.tips if "widen the range" in t]
        for p in self.spec.space:
            if p.type != "categorical":
                continue
            for choice in p.choices:
                tried = [t for t in self.trials if t.params.get(p.name) == choice]
                if len(tried) >= 2 and not any(t.state == TrialState.COMPLETE for t in tried):
                    warns.append(f"`{p.name}: {choice}` never completed in {len(tried)} trials "
                                 f"({', '.join(sorted({t.state.name.lower() for t in tried}))})"
                                 f": drop it or fix what fails.")
        n = max(1, len(self.trials))
        verdicts = Counter(self._verdict(t) for t in self.trials)
        states = Counter(t.state for t in self.trials)
        if verdicts["diverged"] / n > 0.3:
            warns.append(f"{verdicts['diverged']} of {n} trials diverged: lower the upper bound "
                         f"of `learning_rate`.")
        if verdicts["stalled"] / n > 0.3:
            warns.append(f"{verdicts['stalled']} of {n} trials stalled: raise the lower bound of "
                         f"`learning_rate`.")
        if states[TrialState.PRUNED] / n > 0.7:
            warns.append(f"{states[TrialState.PRUNED]} of {n} trials were pruned: the pruner may "
                         f"be too aggressive (raise n_warmup_steps or min_resource, or give the "
                         f"median pruner a margin near the noise floor).")
        if states[TrialState.FAIL] / n > 0.3:
            warns.append(f"{states[TrialState.FAIL]} of {n} trials failed: see "
                         f"`optuna.trial.reason` on their runs.")
        s.text.append("\n".join(f"- {w}" for w in warns) if warns else
                      "No warnings: the best values lie inside their ranges and every choice "
                      "completed at least once.")
        return s, warns

    def next_steps(self, warns: list[str]) -> Section:
        s = Section("What to try next")
        top = self.ranked[:TOP]
        counts = Counter(self._verdict(t) for t in top)
        tips = list(dict.fromkeys(t for c in self.changes for t in c.tips))
        if counts["good_fit"] * 2 > len(top) and top:
            tips.append("The top trials fit well: narrow the ranges around them and run more "
                        "trials, or move to a larger dataset split.")
        tips += [w for w in warns if "learning_rate" in w]
        s.text.append("\n".join(f"- {t}" for t in tips) if tips else
                      "- Too few complete trials to say; run more trials.")
        s.text.append(f"`hpsearch next {self.name}` writes a follow-up spec with "
                      + (f"these {len(self.changes)} change(s), each with its evidence, "
                         if self.changes else "the same space (no rule calls for a change), ")
                      + "warm-started from this study's best trials.")
        return s

    def selection_check(self) -> Section:
        s = Section("Selection check: validation against test")
        top = [t for t in self.ranked[:TOP] if TrialKey.VAL_ACCURACY_AT_BEST in t.user_attrs
               and TrialKey.TEST_ACCURACY_AT_BEST in t.user_attrs]
        n_val, n_test = self.data.get("n_val"), self.data.get("n_test")
        if not top or not n_val or not n_test:
            s.text.append("Not enough information (complete trials with curves and split sizes).")
            return s
        rows, flags = [], []
        for t in top:
            a = t.user_attrs
            va, te = a[TrialKey.VAL_ACCURACY_AT_BEST], a[TrialKey.TEST_ACCURACY_AT_BEST]
            p = min(max((va + te) / 2, 1e-3), 1 - 1e-3)
            noise = 2 * math.sqrt(p * (1 - p) / n_val + p * (1 - p) / n_test)
            ok = abs(va - te) <= noise
            rows.append([t.number, va, te, va - te, f"±{noise:.4f}", "ok" if ok else "**no**"])
            if not ok:
                flags.append(t.number)
        s.text.append(f"Two standard errors of the difference between a validation accuracy "
                      f"({n_val} samples) and a test accuracy ({n_test} samples) are the noise "
                      f"band; a larger difference means the validation score is not a reliable "
                      f"estimate for that trial.")
        s.text.append(table(["trial", "val accuracy", "test accuracy", "difference",
                              "noise band", "within"], rows))
        w = top[0].user_attrs[TrialKey.VAL_ACCURACY_AT_BEST]
        se_val = accuracy_se(w, n_val)  # the noise floor (noise.py), for accuracy
        close = [t.number for t in top[1:]
                 if w - t.user_attrs[TrialKey.VAL_ACCURACY_AT_BEST] <= 2 * math.sqrt(2) * se_val]
        if close:
            s.text.append(f"**The validation winner (trial {top[0].number}) is not robust:** of "
                          f"the trials above, {', '.join(map(str, close))} are within validation "
                          f"noise of it: two standard errors of the difference of two "
                          f"validation scores (2√2 × the noise floor {se_val:.4f} = "
                          f"{2 * math.sqrt(2) * se_val:.4f}); prefer the simplest of them, or "
                          f"enlarge the validation split.")
        elif flags:
            s.text.append(f"Trial(s) {', '.join(map(str, flags))} differ between validation and "
                          f"test by more than sampling noise.")
        else:
            s.text.append(f"The validation winner (trial {top[0].number}) leads by more than "
                          f"validation noise, and its test accuracy agrees.")
        reseeded = reseed_table(self.study, self.spec)
        if reseeded:  # the sweep's reseed trials, or `hpsearch export --reseed R`
            how = ("in the sweep's last stretch (`export.reseed`)" if reseeded.get("in_sweep")
                   else "by `hpsearch export --reseed`")
            s.text.append(f"Reseeded {how}: the top configurations trained with model seeds "
                          f"{reseeded['seeds']}, ranked by the mean validation "
                          f"{reseeded['metric']}; the single-model export takes the first "
                          f"(an ensemble export picks from the kept checkpoints, these trials "
                          f"among them).")
            s.text.append(table(["trial", "per seed", "mean", "standard error", "trials"], [
                [r["trial"], ", ".join(f"{v:.4f}" for v in r["values"]), f"{r['mean']:.4f}",
                 f"±{r['se']:.4f}", ", ".join(map(str, r.get("members") or [r["trial"]]))]
                for r in reseeded["rows"]]))
        return s

    # -- output ----------------------------------------------------------------------------------
    def build(self) -> list[Section]:
        self.out.mkdir(parents=True, exist_ok=True)
        health, warns = self.health()
        sections = [self.summary(), self.leaderboard(), self.next_steps(warns), health,
                    self.curve_sections(), self.fit_section()]
        hist = Section("Optimization history and parameter importances")
        hist.figures = study_plots(self.study, self.out)
        sections += [hist, self.selection_check()]
        return sections


def build_report(name: str, storage_url: str | None = None, tracking_uri: str | None = None,
                 out_dir: str | Path | None = None) -> Path:
    """Write reports/<name>/index.html and report.md (and the figures); returns the directory."""
    out = Path(out_dir) if out_dir else Path("reports") / name
    report = Report(name, storage_url, tracking_uri, out)
    if not report.trials:
        raise StorageError(f"study {name!r} has no trials yet: nothing to report")
    if report.tracker.uri != "none":
        refresh_verdicts(report.study, report.spec, report.tracker)
    sections = report.build()
    title = f"hpsearch report: {name}"
    write_markdown(sections, title, out / "report.md")
    write_html(sections, title, out / "index.html")
    if report.parent and report.tracker.uri != "none" and report.tracker.run_exists(report.parent):
        for f in ("index.html", "report.md"):
            report.tracker.log_artifact(report.parent, out / f, "report")
        # the study's own figures on the sweep's run (drawn here, not at the sweep's end: ~0.6 s
        # that a quick sweep would pay on every run)
        for f in ("optimization_history.png", "param_importances.png"):
            if (out / f).is_file():
                report.tracker.log_artifact(report.parent, out / f, "study")
    return out
