"""Grading: from submitted notebooks to scored results.

- `submissions` finds the notebooks to grade and prepares each one (locked cells as released).
- `pipeline` is the grading service: the isolation policy, the journal, the shards, and the one place a
  hidden suite is run (`run_suite`).
- `plugin` holds the pytest hooks and fixtures that parametrize a suite by submission and record outcomes;
  `pool` owns the submissions' worker processes, `references` runs probes against trusted code (the
  reference, or the reference with a cataloged mistake), `diagnosis` names a cataloged mistake.
- `results` are the types everything downstream reads; `journal` keeps them on disk.
"""
