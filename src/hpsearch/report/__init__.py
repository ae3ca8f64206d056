"""Reading a finished (or running) study for a person: what happened and what to try next.

- ``status``: ``hpsearch status``, the table of trials.
- ``report``: ``hpsearch report``, a static report (leaderboard, curves, verdicts, health, the
  selection check), written by ``render`` as report.md and a self-contained index.html.
- ``advice``: what the verdicts and the parameters of the best trials say to change.
- ``followup``: ``hpsearch next``, the follow-up spec that advice leads to.
- ``dashboard``: ``hpsearch dashboard``, optuna-dashboard over the study storage.

May import: ``search`` (the reseed table), ``study``, ``tracking``, ``spec``, ``diagnosis``,
``model``, ``errors``. Nothing below imports this layer; ``export`` does not either.
"""
