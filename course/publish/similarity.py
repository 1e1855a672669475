"""The similarity report (`course similarity ASSIGNMENT`): which students' solution code is most alike.

Per notebook, each student's solution cells (the code cells nbgrader marks as solutions, in the release's
order) are written to one file, and copydetect compares every pair of files: it normalizes the code (variable,
function and object names become one letter each, strings another), fingerprints it (winnowed k-grams of
`NOISE` characters of the normalized code) and counts how much of each file's fingerprinted code the other one
holds. The release's own stubs of those cells (signatures, docstrings, `raise NotImplementedError()`) are
copydetect's boilerplate: their fingerprints are removed from every file, so untouched cells match nothing.

copydetect's own HTML report links its stylesheet from a CDN; this module writes its own page instead (no
network), `reports/_class/<A>/similarity/index.html`, and `pairs.csv` with every pair.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course import notebooks
from course.config import Assignment, Course, Notebook
from course.errors import CourseError
from course.files import atomic_write
from course.grading.submissions import Submissions, discover
from course.publish import report

NOISE = 25  # copydetect's defaults: the shortest match counted, and the one always found (normalized characters)
GUARANTEE = 25
SHOWN = 20  # pairs whose shared code the page shows side by side
LISTED = 200  # pairs the page lists (pairs.csv has all of them)


@dataclass
class Pair:
    notebook: Notebook
    a: str
    b: str
    a_in_b: float  # the share of a's fingerprinted code that b holds too
    b_in_a: float
    a_html: str = ""  # a's code, the shared parts marked (escaped HTML)
    b_html: str = ""

    @property
    def similarity(self) -> float:
        """The larger share: one who copied a part and wrote the rest scores the part's share."""
        return max(self.a_in_b, self.b_in_a)


@dataclass
class NotebookSimilarity:
    notebook: Notebook
    students: list[str]  # whose code was compared
    unreadable: dict[str, str] = field(default_factory=dict)  # student -> why their notebook was not compared
    stubs_only: list[str] = field(default_factory=list)  # nothing beyond the stubs long enough to fingerprint


@dataclass
class Similarity:
    assignment: Assignment
    notebooks: list[NotebookSimilarity]
    pairs: list[Pair]  # every pair of every notebook, the most alike first
    page: Path = Path()


def graded_submissions(course: Course, assignment: Assignment) -> Submissions:
    """student -> notebook -> the file the saved results were graded from (those that are still there)."""
    found: Submissions = {}
    names = {nb.name for nb in assignment.notebooks}
    for file in sorted(course.files.autograded.glob(f"*/{assignment.name}/*.result.json")):
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        path = data.get("path") if isinstance(data, dict) else None
        if data.get("notebook") in names and path and Path(path).is_file():
            found.setdefault(data["student"], {})[data["notebook"]] = Path(path)
    return found


def solution_code(nb: Any, order: list[str]) -> str:
    """The notebook's solution code cells, in the release's order, one after another."""
    cells = notebooks.solution_cells(nb)
    return "\n\n".join(cells[gid].source for gid in order if gid in cells) + "\n"


def _detector() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # copydetect imports pyplot; its plots are never drawn here
    import copydetect

    return copydetect


def compare(course: Course, notebook: Notebook, files: dict[str, Path]) -> tuple[NotebookSimilarity, list[Pair]]:
    """Every pair of these students' solution code for the notebook, with the release's stubs removed."""
    copydetect = _detector()
    release = notebooks.read(course.paths(notebook).release)
    order = list(notebooks.solution_cells(release))
    result = NotebookSimilarity(notebook, [])
    with tempfile.TemporaryDirectory(prefix="course-similarity-") as tmp:
        folder = Path(tmp)
        (folder / "boilerplate.py").write_text(solution_code(release, order))
        detector = copydetect.CopyDetector(
            extensions=["py"],
            noise_t=NOISE,
            guarantee_t=GUARANTEE,
            display_t=0.0,
            autoopen=False,
            silent=True,
            out_file=str(folder / "unused.html"),
        )
        detector.add_file(str(folder / "boilerplate.py"), type="boilerplate")
        by_file: dict[str, str] = {}
        for i, (student, path) in enumerate(sorted(files.items())):
            try:
                theirs = notebooks.read(path)
            except CourseError as exc:
                result.unreadable[student] = str(exc)
                continue
            if not set(order) & set(notebooks.solution_cells(theirs)):
                result.unreadable[student] = f"{path.name} holds none of the release's solution cells"
                continue
            code = solution_code(theirs, order)
            file = folder / f"{i:05d}.py"  # student ids may hold any character; the file name does not
            file.write_text(code)
            by_file[str(file)] = student
            detector.add_file(str(file))
            result.students.append(student)
        if len(by_file) < 2:
            return result, []
        detector.run()
        data = detector.file_data
        result.stubs_only = [s for f, s in by_file.items() if f in data and len(data[f].hashes) == 0]
        index = {f: i for i, f in enumerate(detector.test_files)}
        pairs = []
        names = sorted(by_file, key=lambda f: by_file[f])
        for x, fa in enumerate(names):
            for fb in names[x + 1 :]:
                a_in_b, b_in_a = detector.similarity_matrix[index[fa], detector.ref_files.index(fb)]
                pair = Pair(notebook, by_file[fa], by_file[fb], float(max(a_in_b, 0)), float(max(b_in_a, 0)))
                pairs.append((pair, fa, fb))
        out = []
        for pair, fa, fb in pairs:
            if pair.similarity > 0:
                ab = detector.slice_matrix.get((fa, fb))
                sa, sb = ab if ab is not None else detector.slice_matrix[(fb, fa)][::-1]
                pair.a_html = _marked(copydetect, data[fa].raw_code, sa)
                pair.b_html = _marked(copydetect, data[fb].raw_code, sb)
            out.append(pair)
        return result, out


def _marked(copydetect: Any, code: str, slices: Any) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        marked, _ = copydetect.utils.highlight_overlap(code, slices, "<mark>", "</mark>", escape_html=True)
    return str(marked)


def find(course: Course, assignment: Assignment, paths: list[Path] | None = None) -> Similarity:
    submissions = discover(assignment, paths) if paths else graded_submissions(course, assignment)
    if not submissions:
        raise CourseError(
            f"{assignment.name}: no submissions to compare (none graded yet; name them: "
            f"course similarity {assignment.name} submitted)"
        )
    per_notebook, pairs = [], []
    for nb in assignment.notebooks:
        files = {s: nbs[nb.name] for s, nbs in submissions.items() if nb.name in nbs}
        found, nb_pairs = compare(course, nb, files)
        per_notebook.append(found)
        pairs += nb_pairs
    pairs.sort(key=lambda p: (-p.similarity, -min(p.a_in_b, p.b_in_a), p.notebook.name, p.a, p.b))
    return Similarity(assignment, per_notebook, pairs)


def pairs_csv(found: Similarity) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["notebook", "student_a", "student_b", "similarity", "a_in_b", "b_in_a"])
    for p in found.pairs:
        writer.writerow([p.notebook.name, p.a, p.b, f"{p.similarity:.3f}", f"{p.a_in_b:.3f}", f"{p.b_in_a:.3f}"])
    return out.getvalue()


def write(course: Course, assignment: Assignment, paths: list[Path] | None = None) -> Similarity:
    found = find(course, assignment, paths)
    folder = course.files.class_report(assignment.name) / "similarity"
    atomic_write(folder / "pairs.csv", pairs_csv(found))
    found.page = folder / "index.html"
    listed = [p for p in found.pairs if p.similarity > 0][:LISTED]
    html = report.render(
        "similarity.html.j2",
        s=found,
        course_title=course.title,
        listed=listed,
        shown=[p for p in listed if p.a_html][:SHOWN],
        noise=NOISE,
        class_report=(folder.parent / "index.html").is_file(),
    )
    atomic_write(found.page, html)
    return found


def summary(found: Similarity) -> str:
    """A few lines for the terminal: the most alike pairs."""
    lines = []
    for nb in found.notebooks:
        lines.append(f"{nb.notebook.name}: {len(nb.students)} submission(s) compared")
    for p in [p for p in found.pairs if p.similarity > 0][:5]:
        lines.append(f"  {p.similarity:6.1%}  {p.a} / {p.b}  ({p.notebook.name})")
    if not any(p.similarity > 0 for p in found.pairs):
        lines.append("  no pair shares code beyond the released stubs")
    return "\n".join(lines)
