"""``hpsearch next NAME``: the follow-up spec that study NAME's report recommends.

The changes come from ``advice.plan`` (the rules the report's "What to try next" shows); this
module applies them to the study's recorded spec, writes the new spec with a comment on every
changed entry (its evidence), names the parent study (``warm_start``: its best trials that fit
the new space run first) and returns a diff-style summary.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import HpsearchError
from ..spec.config import parse_spec
from ..spec.datasets import TABLES
from ..study.noise import noise_floor
from ..study.store import (
    StudyKey,
    join_storage_study,
    ranked,
    search_trials,
    sibling_studies,
    study_spec,
)
from ..study.verdicts import verdicts
from ..study.warmstart import candidates
from .advice import Change, plan, top_trials

WARM_TRIALS = 3  # the parent's best trials (that fit) the follow-up runs first
SECTIONS = ("data", "training", "objective", "budget", "sampler", "pruner", "checkpoints",
            "export", "diagnostics")
FLOW = ("sampler", "pruner", "checkpoints", "export")  # short sections, written on one line


@dataclass
class FollowUp:
    path: Path
    name: str
    changes: list[Change]
    warm: list[int]  # the parent trials the follow-up runs first
    summary: list[str]  # the diff-style lines printed by the command


def next_name(name: str, taken: Collection[str] = ()) -> str:
    """fashion-mnist -> fashion-mnist-next -> fashion-mnist-next2 -> ...; the first that is not
    ``taken`` (a study of that name in the storage)."""
    stem, sep, n = name.rpartition("-next")
    if not (sep and (n == "" or n.isdigit()) and stem):
        stem, n = name, "0"
    k = int(n or 1) + 1
    while True:
        suffix = "-next" if k == 1 else f"-next{k}"
        candidate = stem[:100 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        k += 1


def _flow(value: Any) -> str:
    """``value`` as one line of flow-style YAML."""
    text = yaml.safe_dump([value], default_flow_style=True, width=10**6, sort_keys=False)
    return text.strip()[1:-1]


def write_next(name: str, out: str | Path | None = None, force: bool = False,
               storage_url: str | None = None) -> FollowUp:
    study = join_storage_study(name, storage_url)
    spec = study_spec(study)
    # the reseed trials repeat the top configurations: no evidence about the space
    trials = search_trials(study.get_trials(deepcopy=False))
    best = ranked(study, trials)
    if not best:
        raise HpsearchError(f"study {name!r} has no complete trial ({len(trials)} trial(s)): "
                            f"nothing to base a follow-up on; run more trials first")
    new_name = next_name(name, sibling_studies(study))
    path = Path(out) if out else Path("sweeps") / f"{new_name}.yaml"
    if path.exists() and not force:
        raise HpsearchError(f"{path} exists: choose another --out, or --force to overwrite it")
    if path.is_dir():
        raise HpsearchError(f"{path} is a directory: --out takes a file name")
    floor = noise_floor(best[0], spec.objective.metric,
                        study.user_attrs.get(StudyKey.DATA, {}).get("n_val"))
    changes = plan(spec, best, trials, verdicts(trials, spec), floor[0] if floor else 0.0)
    by_key = {c.key: c for c in changes}
    raw = yaml.safe_load(spec.text) or {}

    new_space: dict[str, Any] = {}
    for p in spec.space:
        c = by_key.get(f"space.{p.name}")
        if c is None:
            new_space[p.name] = raw["space"][p.name]
        elif c.new is not None:
            new_space[p.name] = c.new
    for c in changes:  # added entries go last (nothing refers to them)
        if c.old is None and c.key.startswith("space."):
            new_space[c.key.removeprefix("space.")] = c.new
    sections = {k: raw[k] for k in SECTIONS if raw.get(k) is not None}
    sections["data"] = _data(dict(sections.get("data") or {}), spec.path, path)
    for c in changes:
        if c.key.startswith("training."):
            sections.setdefault("training", {})[c.key.removeprefix("training.")] = c.new
    draft = {"name": new_name, "warm_start": {"study": name, "trials": WARM_TRIALS},
             **sections, "space": new_space}
    new_spec = parse_spec(draft, str(path))  # the rules only write valid specs; checked here
    warm = [t.number for t, _ in candidates(study, new_spec, WARM_TRIALS)]
    text = _render(draft, by_key, name, spec.path, len(best), len(trials), warm,
                   top=len(top_trials(best)))
    parse_spec(yaml.safe_load(text), str(path), text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return FollowUp(path, new_name, changes, warm, _summary(changes, name, warm, path))


def _data(data: dict[str, Any], parent_path: str, path: Path) -> dict[str, Any]:
    """A relative table path (csv:, parquet:) is relative to the spec file: rewritten for the
    new file's place."""
    kind, _, table = str(data.get("dataset", "")).partition(":")
    if kind in TABLES and table and not Path(table).is_absolute():
        source = (Path(parent_path).parent / table).resolve()
        data["dataset"] = f"{kind}:" + os.path.relpath(source, path.parent.resolve())
    return data


def _comment(c: Change | None) -> str:
    return f"  # {c.why}" if c is not None else ""


def _render(draft: dict[str, Any], by_key: dict[str, Change], parent: str, parent_path: str,
            n_complete: int, n_trials: int, warm: list[int], top: int) -> str:
    today = datetime.date.today().isoformat()
    lines = [f"# Follow-up of study `{parent}` (spec {parent_path}), written by `hpsearch next "
             f"{parent}` on {today}",
             f"# from its {n_complete} complete of {n_trials} trials (top trials: the best "
             f"{top}). Each changed entry says why.",
             "# Rules: README.md, \"From one sweep to the next\"."]
    if not by_key:
        lines.append("# No rule called for a change: the space is the parent's (every best value "
                     "lies inside its range, every choice reached the top trials, the top "
                     "trials' verdicts ask for nothing). Running it adds trials from a warm "
                     "start.")
    lines += [f"name: {draft['name']}",
              f"warm_start: {_flow(draft['warm_start'])}  # the parent's best trials that fit "
              f"this space run first" + (f" (now: {', '.join(map(str, warm))})" if warm else
                                         " (none fits now)")]
    for section in SECTIONS:
        if section not in draft:
            continue
        body = draft[section]
        if section in FLOW or not isinstance(body, dict):
            lines.append(f"{section}: {_flow(body)}")
            continue
        lines.append(f"{section}:")
        for key, value in body.items():
            lines.append(f"  {key}: {_flow(value)}{_comment(by_key.get(f'{section}.{key}'))}")
    lines.append("space:")
    for key, value in draft["space"].items():
        lines.append(f"  {key}: {_flow(value)}{_comment(by_key.get(f'space.{key}'))}")
    removed = [c for c in by_key.values() if c.new is None]
    for c in removed:
        lines.append(f"  # removed {c.key.removeprefix('space.')}: {_flow(c.old)} ({c.why})")
    return "\n".join(lines) + "\n"


def _summary(changes: list[Change], parent: str, warm: list[int], path: Path) -> list[str]:
    out = []
    for c in changes:
        if c.old is not None:
            out.append(f"- {c.key}: {_flow(c.old)}")
        if c.new is not None:
            out.append(f"+ {c.key}: {_flow(c.new)}")
        out.append(f"    {c.why}")
    if not changes:
        out.append("  no change to the space or the training settings: no rule called for one")
    out.append(f"+ warm_start: {_flow({'study': parent, 'trials': WARM_TRIALS})}")
    out.append("    " + (f"trials {', '.join(map(str, warm))} of {parent} fit the new space and "
                         f"run first" if warm else "no trial of the parent fits the new space"))
    return out

