"""`course`: release, grade and check the course's notebooks."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import random
import shutil
import sys
import threading
from pathlib import Path

from course import config, report
from course.grade import default_workers
from course.errors import CourseError


def _assignments(course, name):
    return [course.assignment(name)] if name else list(course.assignments.values())


def cmd_release(args, course) -> int:
    from course import release
    if args.notebook and not args.assignment:
        raise CourseError("--notebook needs an assignment: course release ASSIGNMENT --notebook NB")
    failed = False
    for a in _assignments(course, args.assignment):
        if args.check:
            problems = release.stale(course, a)
            for p in problems:
                print(p)
            failed |= bool(problems)
            if not problems:
                print(f"{a.name}: release/ is up to date")
        else:
            for path in release.release(course, a, args.notebook):
                print(f"released {path.relative_to(course.root)}")
    return 1 if failed else 0


@contextlib.contextmanager
def _progress_bar(total: int):
    """A bar on the terminal (none when output is not a terminal): notebooks done, failed, remaining."""
    from tqdm import tqdm
    counts = {"failed": 0}
    with tqdm(total=total, desc="grading", unit="notebook", disable=None, file=sys.stderr,
              bar_format="{desc}: {bar} {n_fmt}/{total_fmt} done{postfix} [{elapsed}<{remaining}]") as bar:
        lock = threading.Lock()

        def tick(student: str, graded: bool):
            with lock:
                counts["failed"] += not graded
                bar.set_postfix_str(f"{counts['failed']} failed, {total - bar.n - 1} remaining", refresh=False)
                bar.update(1)
        yield tick


def _grade_and_report(course, assignment, paths, args, student_view: bool) -> None:
    from course import grade, sandbox
    if getattr(args, "allow_unsandboxed", False):
        course = dataclasses.replace(course, grading=dataclasses.replace(course.grading, sandboxed=False))
    elif student_view and sandbox.sandbox_problem():
        # a learner checking their own notebook runs their own code: no sandbox needed, but say so
        print(f"note: no sandbox here ({sandbox.sandbox_problem()}); your notebook runs as a plain process\n")
        course = dataclasses.replace(course, grading=dataclasses.replace(course.grading, sandboxed=False))
    submissions = grade.discover(assignment, [Path(p) for p in paths])
    seed = args.seed if args.seed is not None else grade.default_seed(course, assignment)
    journal = None
    if not student_view:
        from course.journal import Journal
        journal = Journal(course.root / "autograded", reuse=not args.regrade)
    # a learner who names notebooks is graded on those alone; a class is graded on the whole assignment
    only_submitted = student_view and bool(getattr(args, "notebooks", None))
    graded = {name for nbs in submissions.values() for name in nbs} if only_submitted else assignment.notebooks
    with _progress_bar(len(submissions) * len(graded)) as progress:
        results = grade.grade(course, assignment, submissions, seed=seed, workers=args.workers, journal=journal,
                              progress=progress, only_submitted=only_submitted)
    flat = [r for student in results for r in student]
    reused = sum(r.reused for r in flat)
    for student in results:
        print(report.text(student))
        print()
    if args.json:
        report.write_json(results, Path(args.json), seed)
        print(f"scores written to {args.json}")
    reports_root = Path(args.reports) if args.reports else course.root / "reports"
    written = report.write_feedback(flat, reports_root, course.title)
    print(f"reports: {len(written)} page(s) under {reports_root}")
    if not student_view and not args.no_gradebook:
        from course import gradebook, release
        db = args.db or release.default_db_url(course)
        gradebook.record(course, flat, db)
        gradebook.place_for_formgrader(course, flat)
        print(f"gradebook: {db}")
    if reused:
        print(f"{reused} of {len(flat)} notebook(s) were graded before under the same conditions and kept "
              "(--regrade grades them again)")
    print(f"(inputs drawn with seed {seed}; grading again with the same seed gives the same result)")


def cmd_grade(args, course) -> int:
    _grade_and_report(course, course.assignment(args.assignment), args.submissions, args, student_view=False)
    return 0


def cmd_check(args, course) -> int:
    assignment = course.assignment(args.assignment)
    paths = args.notebooks or [str(course.root / "release" / assignment.name)]
    _grade_and_report(course, assignment, paths, args, student_view=True)
    return 0


def cmd_audit(args, course) -> int:
    from course import audit, grade
    failures = []
    for a in _assignments(course, args.assignment):
        seed = grade.default_seed(course, a)
        for nb in a.notebooks:
            if args.notebook and nb.name != args.notebook:
                continue
            result = audit.audit_notebook(course, nb, seed, args.workers)
            print(audit.matrix(result) if not args.quiet else result.summary())
            print()
            failures += [f"{nb.assignment}/{nb.name}: {f}" for f in result.failures]
    for f in failures:
        print(f"FAIL {f}")
    print(f"audit: {len(failures)} problem(s)" if failures else "audit: every mistake is caught and every "
          "alternative keeps full marks")
    return 1 if failures else 0


def cmd_export(args, course) -> int:
    from course import export, release
    if args.what == "csv":
        text = export.grades_csv(course, _assignments(course, args.target), args.db or release.default_db_url(course))
        if args.out:
            from course.journal import atomic_write
            atomic_write(Path(args.out), text)
            print(f"grades written to {args.out}")
        else:
            print(text, end="")
    elif args.what == "gradescope":
        if not args.target:
            raise CourseError("export gradescope: name the assignment (for example: course export gradescope week1)")
        assignment = course.assignment(args.target)
        out = Path(args.out or f"{assignment.name}-gradescope.zip")
        export.gradescope_zip(course, assignment, out)
        print(f"Gradescope autograder written to {out}: upload it as the assignment's autograder (zip)")
    else:
        if not args.target:
            raise CourseError("export student: name the folder to write (for example: course export student ../students)")
        files = export.student_tree(course, Path(args.target))
        print(f"{len(files)} files written to {args.target}")
    return 0


def cmd_demo(args, course) -> int:
    """Release week 1, make three example submissions, grade them."""
    from course import mistakes, notebooks, release
    import nbformat
    assignment = course.assignment(args.assignment)
    release.release(course, assignment)
    out = course.root / "demo" / "submitted"
    shutil.rmtree(out, ignore_errors=True)
    rng = random.Random(0)
    for nb in assignment.notebooks:
        paths = nb.paths(course.root)
        source = notebooks.read(paths.source)
        catalog = mistakes.load(nb, paths.mistakes)
        # one mistake in each of two exercises: the student loses those exercises' points and keeps the rest
        chosen = {}
        for m in catalog:
            chosen.setdefault(m.exercise, m)
        picked = rng.sample(sorted(chosen.values(), key=lambda m: m.id), k=min(2, len(chosen)))
        for student, made in (("ada", source), ("grace", mistakes.apply(source, picked)),
                              ("linus", notebooks.read(paths.release))):
            dest = out / student / assignment.name / f"{nb.name}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(made, str(dest))
        print(f"grace's {nb.name} has these mistakes: " + "; ".join(m.says for m in picked))
    print()
    args.submissions = [str(out)]
    cmd_grade(args, course)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("release", help="make the student notebooks in release/ from source/ (through nbgrader)",
                       description="Write the reference regions of solutions/ into the source notebooks' solution "
                                   "cells, then run nbgrader's generate_assignment into release/.")
    r.add_argument("assignment", nargs="?", help="one assignment (default: all)")
    r.add_argument("--check", action="store_true", help="change nothing; exit 1 if release/ is out of date")
    r.add_argument("--notebook", metavar="NB", help="only this notebook of the assignment (needs the assignment)")
    r.set_defaults(func=cmd_release)

    def grading_options(sp):
        sp.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
        sp.add_argument("--reports", metavar="DIR", help="where the HTML report pages go (default: reports/)")
        sp.add_argument("--seed", type=int, help="seed for the grading inputs (default: one fixed per assignment)")
        sp.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                        help=f"submissions graded at once (default: the number of cores, {default_workers()})")

    def unsandboxed_option(sp):
        sp.add_argument("--allow-unsandboxed", action="store_true",
                        help="where no sandbox can be started, run the submissions' code without isolation "
                             "(at your own risk; every report says so)")

    g = sub.add_parser("grade", help="grade submissions with the hidden suites",
                       description="Grade notebooks: files, <student>/<assignment>/ folders, or an nbgrader "
                                   "submitted/ tree. Scores go to the terminal, HTML reports, nbgrader's gradebook, and "
                                   "autograded/ (for formgrader and nbgrader's generate_feedback).")
    g.add_argument("assignment")
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    grading_options(g)
    g.add_argument("--db", metavar="URL", help="nbgrader gradebook (default: sqlite:///gradebook.db in the course)")
    g.add_argument("--no-gradebook", action="store_true", help="do not write scores to the gradebook")
    g.add_argument("--regrade", action="store_true",
                   help="grade again even the notebooks graded before under the same conditions")
    unsandboxed_option(g)
    g.set_defaults(func=cmd_grade)

    c = sub.add_parser("check", help="grade your own notebook with the full hidden suite",
                       description="For self-learners: grade your notebooks (default: release/ASSIGNMENT) and "
                                   "show the report. Nothing is written to a gradebook.")
    c.add_argument("assignment")
    c.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    grading_options(c)
    c.set_defaults(func=cmd_check)

    au = sub.add_parser("audit", help="prove the hidden suites: grade every cataloged mistake and alternative",
                        description="Grade the reference, the untouched release, every cataloged mistake and "
                                    "every correct alternative through the real grading path; print which tests "
                                    "catch which mistake. Exit 1 if a mistake keeps full marks for its exercise "
                                    "or an alternative loses a point.")
    au.add_argument("assignment", nargs="?", help="one assignment (default: all)")
    au.add_argument("--notebook", help="only this notebook of the assignment")
    au.add_argument("--quiet", action="store_true", help="one line per notebook instead of the matrix")
    au.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                    help=f"submissions graded at once (default: the number of cores, {default_workers()})")
    au.set_defaults(func=cmd_audit)

    e = sub.add_parser("export", help="grades as CSV, the students' tree, or a Gradescope autograder",
                       description="csv [ASSIGNMENT]: one row per student, one column per assignment and per "
                                   "exercise, from the gradebook. student DIR: the tree to hand to students "
                                   "(release/, data loaders, requirements, the README's student section). "
                                   "gradescope ASSIGNMENT: a Gradescope autograder zip.")
    e.add_argument("what", choices=["csv", "student", "gradescope"])
    e.add_argument("target", nargs="?", help="the assignment (csv: default all; gradescope), or the folder (student)")
    e.add_argument("--out", metavar="FILE", help="csv: write here instead of the terminal; gradescope: the zip")
    e.add_argument("--db", metavar="URL", help="nbgrader gradebook (default: sqlite:///gradebook.db in the course)")
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("demo", help="release, make three example submissions and grade them",
                       description="Release the assignment, write three example submissions under demo/submitted "
                                   "(complete, with realistic mistakes, untouched) and grade them.")
    d.add_argument("assignment", nargs="?", default="week1")
    grading_options(d)
    d.add_argument("--db", metavar="URL", help="nbgrader gradebook (default: sqlite:///gradebook.db in the course)")
    d.add_argument("--no-gradebook", action="store_true", help="do not write scores to the gradebook")
    unsandboxed_option(d)
    d.set_defaults(regrade=True)
    d.set_defaults(func=cmd_demo)
    return p


def parse(argv=None):
    """Options may come before, between or after the paths: `course check week1 --json out.json a.ipynb`.
    (argparse stops filling a list of paths at the first option; the paths after it come back unparsed.)"""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    paths = "submissions" if hasattr(args, "submissions") else "notebooks" if hasattr(args, "notebooks") else None
    if rest and (paths is None or any(r.startswith("-") for r in rest)):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if rest:
        setattr(args, paths, [*(getattr(args, paths) or []), *rest])
    return args


def main(argv=None) -> int:
    args = parse(argv)
    try:
        course = config.load()
        return args.func(args, course)
    except CourseError as exc:
        print(f"course: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("course: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
