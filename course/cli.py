"""`course`: release, grade and check the course's notebooks."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from course import config
from course.authoring import audit, demo, release, requirements
from course.config import Assignment, Course
from course.errors import CourseError
from course.files import atomic_write
from course.grading import pipeline
from course.grading.pipeline import default_workers
from course.grading.submissions import discover
from course.grading.submissions import shard as submissions_shard
from course.publish import classreport, export, gradescope, nbgrader, outputs, similarity


def _assignments(course: Course, name: str | None) -> list[Assignment]:
    return [course.assignment(name)] if name else list(course.assignments.values())


def cmd_release(args: argparse.Namespace, course: Course) -> int:
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
def _progress_bar(total: int) -> Iterator[pipeline.Progress]:
    """A bar on the terminal (none when output is not a terminal): notebooks done, failed, remaining."""
    from tqdm import tqdm

    counts = {"failed": 0}
    with tqdm(
        total=total,
        desc="grading",
        unit="notebook",
        disable=None,
        file=sys.stderr,
        bar_format="{desc}: {bar} {n_fmt}/{total_fmt} done{postfix} [{elapsed}<{remaining}]",
    ) as bar:
        lock = threading.Lock()

        def tick(student: str, graded: bool) -> None:
            with lock:
                counts["failed"] += not graded
                bar.set_postfix_str(f"{counts['failed']} failed, {total - bar.n - 1} remaining", refresh=False)
                bar.update(1)

        yield tick


def _grade_and_publish(
    course: Course,
    assignment: Assignment,
    paths: list[str],
    options: pipeline.GradingOptions,
    targets: outputs.Targets,
    shard: tuple[int, int] | None = None,
) -> None:
    if targets.gradebook:
        nbgrader.check_database(targets.gradebook)  # a gradebook that cannot be written fails before grading
    submissions = discover(assignment, [Path(p) for p in paths])
    if shard:
        submissions = submissions_shard(submissions, *shard)
        print(f"shard {shard[0]}/{shard[1]}: {len(submissions)} student(s): {', '.join(submissions) or 'none'}")
    # a learner who names notebooks is graded on those alone; a class is graded on the whole assignment
    graded = {name for nbs in submissions.values() for name in nbs} if options.only_submitted else assignment.notebooks
    seed = pipeline.seed_for(course, assignment, options)
    with _progress_bar(len(submissions) * len(graded)) as progress:
        results = pipeline.grade(course, assignment, submissions, options, progress=progress)
    outputs.publish(course, results, seed, targets)


def _merge(
    course: Course, assignment: Assignment, paths: list[str], options: pipeline.GradingOptions, targets: outputs.Targets
) -> None:
    """The shards' results, from the journal, into the gradebook and the reports: nothing is graded."""
    if targets.gradebook:
        nbgrader.check_database(targets.gradebook)
    submissions = discover(assignment, [Path(p) for p in paths])
    results, missing = pipeline.saved(course, assignment, submissions, options)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CourseError(
            f"--merge: {len(missing)} notebook(s) have no result graded from their present files yet ({shown}); "
            "run the shards again (each grades only what it is missing), then merge"
        )
    outputs.publish(course, results, pipeline.seed_for(course, assignment, options), targets)


def _db_option(parser: argparse.ArgumentParser) -> None:
    default = "sqlite:///gradebook.db in the course"
    parser.add_argument("--db", metavar="URL", help=f"nbgrader gradebook (default: {default})")


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit()) or not 1 <= int(k) <= int(n):
        raise CourseError(f"--shard {text}: expected K/N with 1 <= K <= N (for example --shard 2/4)")
    return int(k), int(n)


def _isolation(args: argparse.Namespace) -> pipeline.Isolation:
    return "off" if args.allow_unsandboxed else "required"


def _targets(args: argparse.Namespace, course: Course, gradebook: bool) -> outputs.Targets:
    db = (args.db or course.files.gradebook_url) if gradebook and not args.no_gradebook else None
    return outputs.Targets(
        json=Path(args.json) if args.json else None, reports=Path(args.reports) if args.reports else None, gradebook=db
    )


def cmd_grade(args: argparse.Namespace, course: Course) -> int:
    options = pipeline.GradingOptions(
        isolation=_isolation(args), seed=args.seed, workers=args.workers, journal=True, regrade=args.regrade
    )
    assignment, targets, shard = course.assignment(args.assignment), _targets(args, course, gradebook=True), None
    if args.merge:
        if args.shard or args.regrade:
            raise CourseError("--merge grades nothing: it takes neither --shard nor --regrade")
        _merge(course, assignment, args.submissions, options, targets)
        return 0
    if args.shard:
        shard = _shard(args.shard)
        if targets.gradebook and targets.gradebook.startswith("sqlite"):
            # a file database is written by one process at a time: `--merge` writes it, once every shard is done
            targets = dataclasses.replace(targets, gradebook=None)
            print("shard: the SQLite gradebook is left to `course grade --merge` (a database server takes shards)")
    _grade_and_publish(course, assignment, args.submissions, options, targets, shard)
    return 0


def cmd_check(args: argparse.Namespace, course: Course) -> int:
    assignment = course.assignment(args.assignment)
    paths = args.notebooks or [str(course.files.release_dir(assignment.name))]
    options = pipeline.GradingOptions(
        isolation="preferred", seed=args.seed, workers=args.workers, only_submitted=bool(args.notebooks)
    )
    _grade_and_publish(course, assignment, paths, options, _targets(args, course, gradebook=False))
    return 0


def cmd_audit(args: argparse.Namespace, course: Course) -> int:
    if args.sample is not None and not args.mutate:
        raise CourseError("--sample is for --mutate: course audit --mutate --sample N")
    failures = []
    for a in _assignments(course, args.assignment):
        seed = pipeline.default_seed(course, a) if args.seed is None else args.seed
        for nb in a.notebooks:
            if args.notebook and nb.name != args.notebook:
                continue
            if args.requirements:
                print(requirements.table(course, nb), end="\n\n")
                failures += [f"{nb.assignment}/{nb.name}: {f}" for f in requirements.check(course, nb)]
                continue
            if args.mutate:
                mutated = audit.mutation_audit(course, nb, seed, args.workers, sample=args.sample)
                print(mutated.table(), end="\n\n", flush=True)
                failures += [f"{nb.assignment}/{nb.name}: {f}" for f in mutated.failures]
                continue
            result = audit.audit_notebook(
                course, nb, seed, args.workers, every_test=args.every_test, with_nulls=args.nulls
            )
            print(audit.matrix(result) if not args.quiet else result.summary())
            print()
            failures += [f"{nb.assignment}/{nb.name}: {f}" for f in result.failures]
    for f in failures:
        print(f"FAIL {f}")
    print(
        f"audit: {len(failures)} problem(s)"
        if failures
        else "audit: every requirement quotes the notebook and is checked, and every test checks one"
        if args.requirements
        else "audit: every mutant loses points or is listed as equivalent"
        if args.mutate
        else "audit: every mistake is caught and every alternative keeps full marks"
    )
    return 1 if failures else 0


def cmd_export(args: argparse.Namespace, course: Course) -> int:
    if args.what in export.LMS_FORMATS:
        chosen, db = _assignments(course, args.target), args.db or course.files.gradebook_url
        nbgrader.check_database(db)
        text = export.grades_csv(course, chosen, db, lms=args.what)
        if args.what != "csv":
            for line in export.ungraded_students(course, chosen, db):
                print(f"left empty, written answers still to grade: {line}", file=sys.stderr)
        if args.out:
            atomic_write(Path(args.out), text)
            print(f"grades written to {args.out}")
        else:
            print(text, end="")
    elif args.what == "gradescope":
        if not args.target:
            raise CourseError("export gradescope: name the assignment (for example: course export gradescope week1)")
        assignment = course.assignment(args.target)
        out = Path(args.out or f"{assignment.name}-gradescope.zip")
        gradescope.gradescope_zip(course, assignment, out)
        print(f"Gradescope autograder written to {out}: upload it as the assignment's autograder (zip)")
    else:
        if not args.target:
            raise CourseError(
                "export student: name the folder to write (for example: course export student ../students)"
            )
        files = export.student_tree(course, Path(args.target))
        print(f"{len(files)} files written to {args.target}")
    return 0


def cmd_extension(args: argparse.Namespace, course: Course) -> int:
    assignment = course.assignment(args.assignment)
    if args.hours < 0:
        raise CourseError(f"extension: {args.hours:g} hours: expected 0 (none) or more")
    nbgrader.grant_extension(course, assignment, args.student, args.hours, args.db or course.files.gradebook_url)
    print(
        f"{args.student}: {assignment.name} is due {args.hours:g} hour(s) after its due date"
        if args.hours
        else f"{args.student}: no extension for {assignment.name}"
    )
    return 0


def cmd_report(args: argparse.Namespace, course: Course) -> int:
    page = classreport.write(course, course.assignment(args.assignment), args.db)
    print(f"class report written to {page} (and class.csv beside it)")
    return 0


def cmd_similarity(args: argparse.Namespace, course: Course) -> int:
    assignment = course.assignment(args.assignment)
    found = similarity.write(course, assignment, [Path(p) for p in args.submissions] or None)
    print(similarity.summary(found))
    print(f"similarity report written to {found.page} (and pairs.csv beside it)")
    return 0


def cmd_demo(args: argparse.Namespace, course: Course) -> int:
    """Release the assignment, make three example submissions, grade them."""
    assignment = course.assignment(args.assignment)
    release.release(course, assignment)
    folder, described = demo.make_submissions(course, assignment)
    for line in described:
        print(line)
    print()
    options = pipeline.GradingOptions(
        isolation=_isolation(args), seed=args.seed, workers=args.workers, journal=True, regrade=True
    )
    _grade_and_publish(course, assignment, [str(folder)], options, _targets(args, course, gradebook=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "release",
        help="make the student notebooks in release/ from source/ (through nbgrader)",
        description="Write the reference regions of solutions/ into the source notebooks' solution "
        "cells, then run nbgrader's generate_assignment into release/.",
    )
    r.add_argument("assignment", nargs="?", help="one assignment (default: all)")
    r.add_argument("--check", action="store_true", help="change nothing; exit 1 if release/ is out of date")
    r.add_argument("--notebook", metavar="NB", help="only this notebook of the assignment (needs the assignment)")
    r.set_defaults(func=cmd_release)

    def grading_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
        sp.add_argument("--reports", metavar="DIR", help="where the HTML report pages go (default: reports/)")
        sp.add_argument("--seed", type=int, help="seed for the grading inputs (default: one fixed per assignment)")
        sp.add_argument(
            "--workers",
            type=int,
            default=default_workers(),
            metavar="N",
            help=f"submissions graded at once (default: the number of cores, {default_workers()})",
        )

    def unsandboxed_option(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--allow-unsandboxed",
            action="store_true",
            help="where no sandbox can be started, run the submissions' code without isolation "
            "(at your own risk; every report says so)",
        )

    g = sub.add_parser(
        "grade",
        help="grade submissions with the hidden suites",
        description="Grade notebooks: files, <student>/<assignment>/ folders, or an nbgrader "
        "submitted/ tree. Scores go to the terminal, HTML reports, nbgrader's gradebook, and "
        "autograded/ (for formgrader and nbgrader's generate_feedback).",
    )
    g.add_argument("assignment")
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    grading_options(g)
    _db_option(g)
    g.add_argument("--no-gradebook", action="store_true", help="do not write scores to the gradebook")
    g.add_argument(
        "--regrade", action="store_true", help="grade again even the notebooks graded before under the same conditions"
    )
    g.add_argument(
        "--shard",
        metavar="K/N",
        help="grade only shard K of N (every N-th student by id), as one job of N on a cluster; results go to "
        "autograded/ (and to the gradebook when it is a database server); then --merge",
    )
    g.add_argument(
        "--merge",
        action="store_true",
        help="grade nothing: the results the shards saved go to the gradebook, reports and autograded/ "
        "(fails, naming them, while any notebook has none); safe to run again",
    )
    unsandboxed_option(g)
    g.set_defaults(func=cmd_grade)

    c = sub.add_parser(
        "check",
        help="grade your own notebook with the full hidden suite",
        description="For self-learners: grade your notebooks (default: release/ASSIGNMENT) and "
        "show the report. Nothing is written to a gradebook.",
    )
    c.add_argument("assignment")
    c.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    grading_options(c)
    c.set_defaults(func=cmd_check)

    au = sub.add_parser(
        "audit",
        help="prove the hidden suites: grade every cataloged mistake and alternative",
        description="Grade the reference, the untouched release, every cataloged mistake and "
        "every correct alternative through the real grading path; print which tests "
        "catch which mistake. Exit 1 if a mistake keeps full marks for its exercise "
        "or an alternative loses a point.",
    )
    au.add_argument("assignment", nargs="?", help="one assignment (default: all)")
    au.add_argument("--notebook", help="only this notebook of the assignment")
    au.add_argument("--quiet", action="store_true", help="one line per notebook instead of the matrix")
    au.add_argument("--seed", type=int, help="seed for the grading inputs (default: the one fixed per assignment)")
    au.add_argument(
        "--nulls",
        action="store_true",
        help="also grade the null submissions: each function of a solution made to do nothing, return None, "
        "zeros or its input, alone and all at once; the tests that call it must fail",
    )
    au.add_argument(
        "--requirements",
        action="store_true",
        help="only check the stated requirements (autograder/A/requirements/NB.yaml): each quotes the notebook "
        "and names tests of its exercise, and every hidden test checks one; grades nothing",
    )
    au.add_argument(
        "--mutate",
        action="store_true",
        help="grade the mechanical mutants of each reference instead (operators swapped, constants off by one, "
        "dim changed, statements deleted, ...): each must lose points or be listed, with its reason, in "
        "autograder/A/equivalent/NB.yaml; prints per exercise the mutants generated, killed, equivalent, "
        "other designs (of an open-design exercise, kept full marks) and surviving",
    )
    au.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="with --mutate: a fixed sample of N mutants per notebook (those not listed as equivalent)",
    )
    au.add_argument(
        "--every-test",
        action="store_true",
        help="run every test on every variant (by default a variant runs only the tests whose probes reach "
        "the code it changes, as traced on the reference)",
    )
    au.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        metavar="N",
        help=f"submissions graded at once (default: the number of cores, {default_workers()})",
    )
    au.set_defaults(func=cmd_audit)

    e = sub.add_parser(
        "export",
        help="grades as CSV (ours, Canvas's, Moodle's), the students' tree, or a Gradescope autograder",
        description="csv [ASSIGNMENT]: one row per student, one column per assignment and per "
        "exercise, from the gradebook. canvas / moodle [ASSIGNMENT]: the CSV that Canvas's or Moodle's "
        "gradebook imports (an assignment with written answers still to grade is left empty). "
        "student DIR: the tree to hand to students "
        "(release/, data loaders, requirements, the README's student section). "
        "gradescope ASSIGNMENT: a Gradescope autograder zip.",
    )
    e.add_argument("what", choices=[*export.LMS_FORMATS, "student", "gradescope"])
    e.add_argument("target", nargs="?", help="the assignment (csv: default all; gradescope), or the folder (student)")
    e.add_argument("--out", metavar="FILE", help="csv: write here instead of the terminal; gradescope: the zip")
    _db_option(e)
    e.set_defaults(func=cmd_export)

    x = sub.add_parser(
        "extension",
        help="give a student more time for an assignment (nbgrader's extensions)",
        description="Move the student's due date for the assignment HOURS later in nbgrader's gradebook "
        "(0 removes the extension). The assignment's due date is nbgrader's: `nbgrader db assignment add "
        "ASSIGNMENT --duedate=...`. `course grade` applies nbgrader's late penalty from there.",
    )
    x.add_argument("assignment")
    x.add_argument("student")
    x.add_argument("hours", type=float)
    _db_option(x)
    x.set_defaults(func=cmd_extension)

    rp = sub.add_parser(
        "report",
        help="the class report of a graded assignment: histograms, named mistakes, points lost, late work",
        description="From the results `course grade` saved (autograded/) and nbgrader's gradebook, write "
        "reports/_class/ASSIGNMENT/: index.html (per-exercise score histograms, the named mistakes ranked by how "
        "many students' answers matched them, the exercises ranked by points lost, the notebooks that could not "
        "be graded and why, the late submissions and their penalty) and class.csv (one row per student and "
        "exercise). "
        "Grades nothing.",
    )
    rp.add_argument("assignment")
    _db_option(rp)
    rp.set_defaults(func=cmd_report)

    sm = sub.add_parser(
        "similarity",
        help="which students' solution code is most alike (copydetect), pair by pair",
        description="Extract each student's solution cells, notebook by notebook, remove the released stubs "
        "(copydetect's boilerplate), compare every pair with copydetect's fingerprints (variable names do not "
        "matter), and write reports/_class/ASSIGNMENT/similarity/: index.html (the pairs, most alike first, the "
        "shared code highlighted) and pairs.csv. A high similarity is a reason to look, not a finding.",
    )
    sm.add_argument("assignment")
    sm.add_argument(
        "submissions",
        nargs="*",
        metavar="SUBMISSION",
        help="notebooks, <student>/<assignment>/ folders or a submitted/ tree (default: the notebooks that "
        "the saved results were graded from)",
    )
    sm.set_defaults(func=cmd_similarity)

    d = sub.add_parser(
        "demo",
        help="release, make three example submissions and grade them",
        description="Release the assignment, write three example submissions under demo/submitted "
        "(complete, with realistic mistakes, untouched) and grade them.",
    )
    d.add_argument("assignment", nargs="?", default="week1")
    grading_options(d)
    _db_option(d)
    d.add_argument("--no-gradebook", action="store_true", help="do not write scores to the gradebook")
    unsandboxed_option(d)
    d.set_defaults(func=cmd_demo)
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Options may come before, between or after the paths: `course check week1 --json out.json a.ipynb`.
    (argparse stops filling a list of paths at the first option; the paths after it come back unparsed.)"""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    paths = "submissions" if hasattr(args, "submissions") else "notebooks" if hasattr(args, "notebooks") else None
    if rest and (paths is None or any(r.startswith("-") for r in rest)):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if rest and paths:
        setattr(args, paths, [*(getattr(args, paths) or []), *rest])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        # only a learner's own check may run from anywhere: every other command writes into the course folder
        course = config.load(config.find_root(fallback=args.command == "check"))
        return int(args.func(args, course))
    except CourseError as exc:
        print(f"course: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("course: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
