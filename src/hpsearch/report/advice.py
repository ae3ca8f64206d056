"""What a study's results say to change in its spec: the rules behind the report's "What to try
next" and ``hpsearch next`` (one set of rules, so that the report and the follow-up spec agree).

``plan(spec, ranked, trials, fits)`` is pure: it returns the changes, each with the evidence (the
numbers) and the sentence the report shows. The rules, in the order they are applied:

1. **Bound**: the value of a numeric range in the best of the top trials that have it lies
   within 5 % of a bound (in the range's own scale, log or linear): the range is widened past
   that bound, a log range by a factor of 3, a linear one by a quarter of its width, never past
   the engine's own bounds (and on the range's ``step`` grid).
2. **Narrow** (20 or more complete trials): the top trials (the best tenth, at least 5; at least
   3 of them with the entry) span a part of the range: it is narrowed to that span plus a
   margin on each side of a quarter of the
   span (at least 10 % of the old width), when that keeps at most 70 % of the width. A side that
   rule 1 widened stays widened.
3. **Dead choice**: a categorical choice sampled in at least 4 finished trials and a tenth of
   them, none of which is among the top trials nor within the noise floor (noise.py) of the
   top trials' cut-off, is dropped; an entry that only applied with it (``when``) goes too. A
   categorical left with one choice becomes fixed.
4. **Verdicts** of the top 5: when at least half overfit, the dropout range is raised by 0.2
   (at most to 0.8) and the L2 upper bound by a factor 10 (a range is added where the space has
   none); when half underfit, every hidden-size range's upper bound doubles; when half are
   undertrained (stopped by ``max_epochs`` while still improving), ``max_epochs`` grows by half
   (the early-stopping patience did not stop them, so it stays).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ..model.params import Interval
from ..spec.config import RANGES
from ..spec.schema import ParamSpec, SweepSpec

TOP = 5  # the top trials whose verdicts decide
NEAR_BOUND = 0.05  # share of a range's width next to a bound that counts as "on the bound"
LOG_FACTOR = 3.0  # a log range widens by this factor past a bound
LINEAR_SHARE = 0.25  # a linear range widens by this share of its width
NARROW_MIN_COMPLETE = 20  # complete trials before a range is narrowed
NARROW_KEEP = 0.7  # narrow only when the new range keeps at most this share of the width
MIN_SAMPLED = 4  # finished trials of a choice before it can be judged dead
DROPOUT_STEP, DROPOUT_CAP = 0.2, 0.8
L2_FACTOR = 10.0
NEW_DROPOUT: dict[str, Any] = {"type": "float", "low": 0.0, "high": 0.5}
NEW_L2: dict[str, Any] = {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class Change:
    """One change to a spec: ``key`` is ``space.<name>`` or ``training.<key>``; ``old``/``new``
    are the raw entries (None: the entry is added / removed)."""

    key: str
    old: Any
    new: Any
    why: str  # the evidence, with its numbers
    tips: tuple[str, ...] = ()  # the sentences the report shows


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if (abs(v) < 1e-2 or abs(v) >= 1e4) and v != 0 else f"{v:.4g}"
    return str(v)


def entry(p: ParamSpec) -> Any:
    """The raw YAML entry of a parsed parameter (a bare value for a fixed one without ``when``)."""
    when = {k: (list(v) if len(v) > 1 else v[0]) for k, v in p.when}
    if p.type == "fixed":
        value = list(p.value) if isinstance(p.value, tuple) else p.value
        return {"type": "fixed", "value": value, "when": when} if when else value
    out: dict[str, Any] = {"type": p.type}
    if p.type == "categorical":
        out["choices"] = list(p.choices)
    else:
        out.update(low=p.low, high=p.high)
        if p.log:
            out["log"] = True
        if p.step is not None:
            out["step"] = p.step
    if when:
        out["when"] = when
    return out


def top_trials(ranked: list[FrozenTrial]) -> list[FrozenTrial]:
    """The best tenth of the complete trials, at least ``TOP``."""
    return ranked[:max(TOP, math.ceil(0.1 * len(ranked)))]


def plan(spec: SweepSpec, ranked: list[FrozenTrial], trials: list[FrozenTrial],
         fits: dict[int, tuple[str, str]], noise: float = 0.0) -> list[Change]:
    """The changes the study's results call for (empty when none do); ``noise``: the
    objective's noise floor (a choice this close to the top is not judged dead)."""
    if not ranked:
        return []
    top = top_trials(ranked)
    changes: list[Change] = []
    for p in spec.space:
        if p.type in ("float", "int"):
            changes += _numeric(p, top, len(ranked))
    for p in spec.space:
        if p.type == "categorical" and len(p.choices) > 1:
            changes += _choices(p, spec, top, trials, noise)
    changes += _verdict_rules(spec, ranked[:TOP], fits)
    return _merge(changes)


# -- rules 1 and 2: numeric ranges --------------------------------------------------------------
def _scale(p: ParamSpec) -> tuple[Any, Any]:
    if p.log:
        return math.log, math.exp
    return (lambda v: v), (lambda u: u)


def _numeric(p: ParamSpec, top: list[FrozenTrial], n_complete: int) -> list[Change]:
    values = [float(t.params[p.name]) for t in top if p.name in t.params]
    if not values:
        return []
    assert p.low is not None and p.high is not None
    fwd, back = _scale(p)
    lo, hi = fwd(float(p.low)), fwd(float(p.high))
    width = hi - lo
    if width <= 0:
        return []
    new_lo, new_hi = float(p.low), float(p.high)
    why, tips = [], []
    us = [fwd(v) for v in values]
    if n_complete >= NARROW_MIN_COMPLETE and len(values) >= 3:
        span = max(us) - min(us)
        margin = max(0.25 * span, 0.1 * width)
        a, b = max(lo, min(us) - margin), min(hi, max(us) + margin)
        if b - a <= NARROW_KEEP * width:
            new_lo, new_hi = back(a), back(b)
            why.append(f"the top {len(values)} trials span {fmt(min(values))}..{fmt(max(values))}"
                       f" ({(max(us) - min(us)) / width:.0%} of the width): narrowed to it "
                       f"with a margin")
            tips.append(f"narrow `{p.name}` to the top trials' span")
    best = values[0]
    frac = (fwd(best) - lo) / width
    for side, near in (("low", frac <= NEAR_BOUND), ("high", frac >= 1 - NEAR_BOUND)):
        if not near:
            continue
        old = float(getattr(p, side))
        wider = _widen(p, old, side, width)
        if wider is None:
            continue
        if side == "low":
            new_lo = wider
        else:
            new_hi = wider
        how = f"by a factor {LOG_FACTOR:g}" if p.log else f"by {LINEAR_SHARE:.0%} of its width"
        where = "bottom" if side == "low" else "top"
        why.append(f"the best value {fmt(best)} is at the {where} of [{fmt(float(p.low))}, "
                   f"{fmt(float(p.high))}]: widened {how} to {fmt(wider)}")
        tips.append(f"The best `{p.name}` ({fmt(best)}) is at the {where} of its range "
                    f"[{fmt(float(p.low))}, {fmt(float(p.high))}]: widen the range "
                    f"{'downwards' if side == 'low' else 'upwards'}.")
    if not why:
        return []
    raw_lo, raw_hi = new_lo, new_hi
    if p.type == "int":
        new_lo, new_hi = math.floor(new_lo + 1e-9), math.ceil(new_hi - 1e-9)
    else:
        new_lo, new_hi = _round(new_lo, up=False), _round(new_hi, up=True)
    hard = _hard(p)
    if hard is not None:  # outward rounding must not step onto an open bound (beta2 < 1)
        new_lo = new_lo if hard.within(new_lo) else raw_lo
        new_hi = new_hi if hard.within(new_hi) else raw_hi
    if p.step is not None:  # keep the grid: low + k * step
        step, base = float(p.step), float(p.low)
        new_lo = base + math.floor((new_lo - base) / step + 1e-9) * step
        new_hi = base + math.ceil((new_hi - base) / step - 1e-9) * step
        if p.type == "int":
            new_lo, new_hi = int(new_lo), int(new_hi)
    if (new_lo, new_hi) == (p.low, p.high) or new_lo >= new_hi:
        return []
    old_entry = entry(p)
    new_entry = {**old_entry, "low": new_lo, "high": new_hi}
    return [Change(f"space.{p.name}", old_entry, new_entry, "; ".join(why),
                   tuple(t if t.endswith(".") else t[0].upper() + t[1:] + "." for t in tips))]


def _widen(p: ParamSpec, old: float, side: str, width: float) -> float | None:
    """The bound ``old`` moved past itself, within the engine's bounds; None if it cannot move."""
    if p.log:
        new = old / LOG_FACTOR if side == "low" else old * LOG_FACTOR
    else:
        new = old - LINEAR_SHARE * width if side == "low" else old + LINEAR_SHARE * width
    hard = _hard(p)
    if hard is not None and side == "low" and new <= hard.low:
        new = hard.low if not hard.low_open else (old + hard.low) / 2
    if hard is not None and side == "high" and hard.high is not None and new >= hard.high:
        new = hard.high if not hard.high_open else (old + hard.high) / 2
    if p.type == "int":
        new = math.floor(new) if side == "low" else math.ceil(new)
    return None if math.isclose(new, old) else new


def _hard(p: ParamSpec) -> Interval | None:
    """The engine's own bounds of an entry (config.RANGES)."""
    return RANGES.get(p.name) or (RANGES["hidden_size"] if p.name.startswith("hidden_size")
                                  else None)


def _round(v: float, up: bool) -> float:
    """``v`` to 3 significant digits, rounded outwards (a bound never moves inwards)."""
    if v == 0 or not math.isfinite(v):
        return v
    scale = 10 ** (math.floor(math.log10(abs(v))) - 2)
    q = v / scale  # 0.1 * 3 is 0.30000000000000004: not a reason to round up to 0.301
    return float(f"{(math.ceil(q - 1e-9) if up else math.floor(q + 1e-9)) * scale:.3g}")


# -- rule 3: dead categorical choices ----------------------------------------------------------
def _choices(p: ParamSpec, spec: SweepSpec, top: list[FrozenTrial],
             trials: list[FrozenTrial], noise: float) -> list[Change]:
    finished = [t for t in trials if t.state in FINISHED and p.name in t.params]
    in_top = {repr(t.params[p.name]) for t in top if p.name in t.params}
    if not in_top:
        return []
    cutoff = top[-1].value
    dead = []
    for c in p.choices:
        mine = [t for t in finished if repr(t.params[p.name]) == repr(c)]
        if repr(c) in in_top or len(mine) < max(MIN_SAMPLED, 0.1 * len(finished)):
            continue
        states = Counter(t.state.name.lower() for t in mine)
        done = [t.value for t in mine if t.state == TrialState.COMPLETE and t.value is not None]
        maximize = spec.objective.direction == "maximize"
        mine_best = (max(done) if maximize else min(done)) if done else None
        if mine_best is not None and cutoff is not None and noise and \
                abs(cutoff - mine_best) <= noise:
            continue  # within the noise of the top: not told apart from it
        best = (f", best {fmt(mine_best)} against the top trials' cut-off {fmt(cutoff)}"
                + (f" (noise floor {noise:.4f})" if noise else "") if done else "")
        dead.append((c, f"`{c}` in {len(mine)} of {len(finished)} finished trials "
                        f"({', '.join(f'{n} {s}' for s, n in states.most_common())}){best}, "
                        f"never among the top {len(top)}"))
    if not dead:
        return []
    keep = [c for c in p.choices if c not in [d for d, _ in dead]]
    old_entry = entry(p)
    if len(keep) == 1:
        new_entry: Any = ({"type": "fixed", "value": keep[0], "when": old_entry["when"]}
                          if "when" in old_entry else keep[0])
    else:
        new_entry = {**old_entry, "choices": keep}
    why = "; ".join(w for _, w in dead)
    names = ", ".join(f"`{p.name}: {c}`" for c, _ in dead)
    changes = [Change(f"space.{p.name}", old_entry, new_entry, f"dropped: {why}",
                      (f"{names} never reached the top {len(top)} trials: drop it.",))]
    for q in spec.space:  # entries that only applied with a dropped choice
        for other, values in q.when:
            if other != p.name:
                continue
            left = [v for v in values if v in keep]
            if len(left) == len(values):
                continue
            q_old = entry(q)
            gone = ", ".join(f"`{p.name}: {v}`" for v in values if v not in keep)
            if not left:
                changes.append(Change(f"space.{q.name}", q_old, None,
                                      f"used only with {gone}, which is dropped"))
            else:
                when = {**q_old["when"], other: left if len(left) > 1 else left[0]}
                changes.append(Change(f"space.{q.name}", q_old, {**q_old, "when": when},
                                      f"{gone} is dropped from its `when`"))
    return changes


# -- rule 4: what the top trials' verdicts call for --------------------------------------------
def _verdict_rules(spec: SweepSpec, top: list[FrozenTrial],
                   fits: dict[int, tuple[str, str]]) -> list[Change]:
    counts = Counter(fits.get(t.number, ("", ""))[0] for t in top)
    n = len(top)
    space = {p.name: p for p in spec.space}
    out: list[Change] = []
    if counts["overfitting"] * 2 >= n:
        why = f"{counts['overfitting']} of the top {n} trials overfit"
        out += _regularise(space, why, (
            f"{why}: raise the dropout range and the L2 upper bound, or try fewer units; lower "
            f"the early-stopping patience.",))
    if counts["underfitting"] * 2 >= n:
        why = f"{counts['underfitting']} of the top {n} trials underfit"
        tip: tuple[str, ...] = (f"{why}: allow more units or a second layer, and less "
                                f"dropout and L2.",)
        named = [p for p in spec.space if p.name.startswith("hidden_size")]
        sizes = [p for p in named if p.type in ("int", "fixed") and not isinstance(p.value, tuple)]
        for p in sizes:
            old = entry(p)
            if p.type == "fixed":
                new = {"type": "int", "low": int(p.value), "high": 2 * int(p.value), "log": True,
                       **_when(p)}
            else:
                assert p.high is not None
                new = {**old, "high": 2 * int(p.high)}
            out.append(Change(f"space.{p.name}", old, new, f"{why}: upper bound doubled", tip))
            tip = ()
        if not named:  # (categorical sizes or a hidden_sizes list: the user's own design)
            out.append(Change("space.hidden_size", None, {"type": "int", "low": 64, "high": 512,
                                                          "log": True},
                              f"{why}: a hidden-size range added", tip))
    if counts["undertrained"] * 2 >= n:
        old_epochs = spec.training.max_epochs
        new_epochs = math.ceil(1.5 * old_epochs)
        out.append(Change("training.max_epochs", old_epochs, new_epochs,
                          f"{counts['undertrained']} of the top {n} trials were still improving "
                          f"at max_epochs={old_epochs}: raised by half (the early-stopping "
                          f"patience did not stop them, so it stays)",
                          (f"{counts['undertrained']} of the top {n} trials were still improving"
                           f" at max_epochs={old_epochs}: raise it.",)))
    return out


def _regularise(space: dict[str, ParamSpec], why: str, tip: tuple[str, ...]) -> list[Change]:
    out = []
    d = space.get("dropout")
    if d is None:
        out.append(Change("space.dropout", None, dict(NEW_DROPOUT), f"{why}: dropout added", tip))
    elif d.type == "float" and d.high is not None and d.high < DROPOUT_CAP:
        new_hi = round(min(float(d.high) + DROPOUT_STEP, DROPOUT_CAP), 3)
        out.append(Change("space.dropout", entry(d), {**entry(d), "high": new_hi},
                          f"{why}: the dropout upper bound raised by {DROPOUT_STEP:g}", tip))
    elif d.type == "fixed" and isinstance(d.value, float | int) and d.value < DROPOUT_CAP:
        out.append(Change("space.dropout", entry(d), {
            "type": "float", "low": float(d.value),
            "high": round(min(float(d.value) + 0.3, DROPOUT_CAP), 3), **_when(d)},
            f"{why}: the fixed dropout became a range above it", tip))
    tip = () if out else tip
    reg = space.get("l2")
    if reg is None:
        out.append(Change("space.l2", None, dict(NEW_L2), f"{why}: an L2 range added", tip))
    elif reg.type == "float" and reg.high is not None:
        new_hi = _round(float(reg.high) * L2_FACTOR, up=True)
        out.append(Change("space.l2", entry(reg), {**entry(reg), "high": new_hi},
                          f"{why}: the L2 upper bound raised by a factor {L2_FACTOR:g}", tip))
    elif reg.type == "fixed" and isinstance(reg.value, float | int):
        low = float(reg.value) or float(NEW_L2["low"])
        out.append(Change("space.l2", entry(reg), {**NEW_L2, "low": low,
                                                   "high": _round(low * 100, up=True),
                                                   **_when(reg)},
                          f"{why}: the fixed L2 became a range above it", tip))
    return out


def _when(p: ParamSpec) -> dict[str, Any]:
    e = entry(p)
    return {"when": e["when"]} if isinstance(e, dict) and "when" in e else {}


def _merge(changes: list[Change]) -> list[Change]:
    """One change per key: a later rule applies its edits to the entry an earlier one
    produced; a bound two rules move keeps the wider move; a removed entry stays removed."""
    out: dict[str, Change] = {}
    for c in changes:
        prev = out.get(c.key)
        if prev is None:
            out[c.key] = c
            continue
        if prev.new is None:  # removed (it applied only with a dropped choice)
            continue
        new = c.new
        if isinstance(prev.new, dict) and isinstance(c.new, dict) and isinstance(c.old, dict):
            new = dict(prev.new)
            for k, v in c.new.items():
                if c.old.get(k) == v:
                    continue
                if k == "high" and isinstance(v, int | float) and "high" in prev.new:
                    v = max(v, prev.new["high"]) if v > c.old.get(k, v) else v
                elif k == "low" and isinstance(v, int | float) and "low" in prev.new:
                    v = min(v, prev.new["low"]) if v < c.old.get(k, v) else v
                elif k == "when" and isinstance(v, dict):
                    v = {**prev.new.get("when", {}), **v}
                new[k] = v
        out[c.key] = Change(c.key, prev.old, new, f"{prev.why}; {c.why}", prev.tips + c.tips)
    return list(out.values())
