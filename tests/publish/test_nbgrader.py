"""The adapter to nbgrader: a gradebook made without a release holds what nbgrader's own release records."""

import sqlite3

from course.authoring import release
from course.publish import nbgrader

TABLES = {
    "notebook": "select name from notebook",
    "grade_cell": "select b.name, g.max_score, g.cell_type from grade_cells g join base_cell b on b.id = g.id",
    "solution_cell": "select b.name from solution_cells s join base_cell b on b.id = s.id",
    "source_cell": "select name, cell_type, locked, source, checksum from source_cell",
}


def rows(db):
    with sqlite3.connect(db) as con:
        return {table: sorted(con.execute(query).fetchall()) for table, query in TABLES.items()}


def test_recording_an_assignment_writes_the_cells_a_release_would(mini, tmp_path):
    a = mini.assignment("toy")
    release.generate(mini, a, db_url=f"sqlite:///{tmp_path}/released.db", release_directory=str(tmp_path / "out"))
    nbgrader.record_assignment(mini, a, f"sqlite:///{tmp_path}/recorded.db")
    released, recorded = rows(tmp_path / "released.db"), rows(tmp_path / "recorded.db")
    assert released["grade_cell"] and released["source_cell"], "the release recorded nothing to compare with"
    assert recorded == released
    assert not (tmp_path / "recorded").exists()
