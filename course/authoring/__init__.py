"""Authoring: what instructors run to make and prove the course — `release` (solutions/ into source/, then
nbgrader into release/), `audit` (every cataloged mistake and alternative graded through the real path),
and `demo` (an example class made from the catalogs)."""
