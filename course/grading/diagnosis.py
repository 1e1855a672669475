"""Naming the mistake: when a test fails, which cataloged mistakes of its exercise the submission's
answers match, and, per exercise, the names every such failure agrees on."""

from __future__ import annotations

import contextlib
import copy
import inspect
import signal
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from course.catalog import Variant
from course.grading.references import References, Runner, call_key
from course.grading.results import NotebookResult
from course.testing import Probe, differences


@dataclass(frozen=True)
class Raised:
    """What a student's call raised, recorded in place of an answer: the exception's type and message, and
    the student function it came out of (None: raised outside the student's code, by the probe)."""

    kind: str | None
    message: str | None = None
    function: str | None = None


Answers = dict[tuple[str, str], tuple[Probe, dict[str, Any], Any]]  # call -> (probe, kwargs, answer or Raised)


class _TooSlow(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """A cataloged mistake runs in the grader's process: never let one hang the grading."""

    def expire(signum: int, frame: object) -> None:
        raise _TooSlow()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _raised(exc: BaseException, filename: str) -> Raised:
    """The exception of a mistaken reference, as a student's is recorded: the function is the innermost
    frame of the mistaken reference's own code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return Raised(type(exc).__name__, str(exc)[:2000], frames[-1].name if frames else None)


class MistakeNamer:
    """Compares a failing test's answers with the answers of the reference with each cataloged mistake."""

    def __init__(self, catalog: list[Variant], references: References, time_limit: float):
        self.catalog = catalog
        self.references = references
        self.time_limit = time_limit

    def matches(self, item: Any, exercise: str, answers: Answers) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Which cataloged mistakes of this exercise this failure matches, and which it cannot be compared
        with. A match: the reference with that mistake gives the student's answers to every call the test
        made, or raises what the student's code raised; or the test passes when it compares the student's
        answers with that mistaken reference. Undecided: the comparison needed what cannot be known here (a
        call that hung or crashed, a mistaken reference too slow to run in the grader, the same exception, type
        and message, where the probe raised it on one side at least). Every other mistake is contradicted by
        this failure."""
        if not answers:
            return (), ()
        found, undecided = [], []
        reference = self.references.runner(item.module)
        for m in self.catalog:
            if m.exercise != exercise:  # a mistake is named at its own exercise, not where it cascades
                continue
            mistaken = self.references.runner(item.module, m)
            same = self._same_answers(answers, mistaken, self.references.filename(m), reference)
            if same is True or self._passes_against(item, answers, mistaken):
                found.append(m.id)
            elif same is None:
                undecided.append(m.id)
        return tuple(found), tuple(undecided)

    def _same_answers(self, answers: Answers, mistaken: Runner, filename: str, reference: Runner) -> bool | None:
        """True: the mistaken reference answers every call as the student's code did; False: it answers one
        otherwise, or it answers every call exactly as the reference does (the test failed, so whatever went
        wrong changed an answer, and this mistake changes none); None: that cannot be told here."""
        # the calls the reference answered fastest first: the first difference ends the comparison, so a
        # mistake's long training run is reached only when every quicker answer agreed
        ordered = sorted(answers.values(), key=lambda a: self.references.seconds_of(a[0], a[1]))
        verdict: bool | None = True
        changes_nothing = True  # so far, the mistaken reference gave the reference's own answers, bit for bit
        for probe, kwargs, answer in ordered:
            if isinstance(answer, Raised) and answer.kind is None:
                verdict = None  # a hang or a crash: nothing to compare, and the mistake might hang here too
                changes_nothing = False
                continue
            if isinstance(answer, Raised) and answer.kind == "NotImplementedError":
                return False  # a stub left as released: no cataloged mistake is an unwritten function
            try:
                with _time_limit(self.time_limit):
                    theirs = mistaken(probe, **kwargs)
            except _TooSlow:
                verdict = None
                changes_nothing = False
                continue
            except Exception as exc:
                changes_nothing = False
                # the same exception: its type, its message and the function it came out of (a shape slip and a
                # missing return both raise RuntimeError or TypeError); where the probe raised it on what came
                # back, on either side, it says nothing about where the code went wrong
                ours = _raised(exc, filename)
                if not isinstance(answer, Raised) or (answer.kind, answer.message) != (ours.kind, ours.message):
                    return False
                if answer.function is None or ours.function is None:
                    verdict = None
                elif answer.function != ours.function:
                    return False
                continue
            if isinstance(answer, Raised) or differences(
                _measured_out(answer), _measured_out(theirs), atol=1e-6, rtol=1e-4
            ):
                return False
            changes_nothing = changes_nothing and _same_as_reference(reference, probe, kwargs, theirs)
        return False if changes_nothing else verdict

    def _passes_against(self, item: Any, answers: Answers, mistaken: Runner) -> bool:
        if any(isinstance(a, Raised) for _, _, a in answers.values()):
            return False

        def replay(probe: Probe, timeout: float | None = None, **kwargs: Any) -> Any:
            return copy.deepcopy(answers[call_key(probe, kwargs)][2])  # KeyError: the test asked for more

        args = {n: item.funcargs[n] for n in inspect.signature(item.obj).parameters}
        args.update(student=replay, reference=mistaken)
        try:
            with _time_limit(self.time_limit):
                item.obj(**args)
        except Exception:
            return False
        return True


def _same_as_reference(reference: Runner, probe: Probe, kwargs: dict[str, Any], theirs: Any) -> bool:
    """The reference's answer to this call is the mistaken reference's, exactly (the reference's answers are
    cached: the test asked for them already)."""
    try:
        ours = reference(probe, **kwargs)
    except Exception:
        return False
    return not differences(_measured_out(ours), _measured_out(theirs), atol=0, rtol=0)


def _measured_out(answer: Any) -> Any:
    """An answer without what a probe measured of the machine (keys that name seconds: CPU or wall time),
    which says nothing about the code."""
    if isinstance(answer, dict):
        return {k: _measured_out(v) for k, v in answer.items() if not (isinstance(k, str) and "seconds" in k)}
    return answer


def per_exercise(result: NotebookResult, mistakes: list[Variant]) -> dict[str, list[str]]:
    """Per exercise, the cataloged mistakes that every failure of the exercise allows: one failure at least
    matches the mistake, and none contradicts it (a failure that the mistake does not explain says the
    submission is not, or not only, that mistake; one that cannot be compared with it, a hang for one, says
    nothing). A name is given only when it accounts for everything that went wrong in the exercise. No name
    is given where the exercise builds on another that lost points too (a cataloged mistake of that one lists
    this exercise under `also:`): the failures may come from there."""
    says = {m.id: m.says for m in mistakes}
    builds_on: dict[str, set[str]] = {}
    for m in mistakes:
        for later in m.also:
            builds_on.setdefault(later, set()).add(m.exercise)
    lost = {t.exercise for t in result.tests if not t.passed}
    out = {}
    for ex in lost:
        if builds_on.get(ex, set()) & (lost - {ex}):
            continue
        failed = [t for t in result.tests if t.exercise == ex and not t.passed]
        # a name every failure allows (matches, or cannot be compared with), and one failure at least matches
        allowed = [set(t.mistakes) | set(t.undecided) for t in failed]
        common = set.intersection(*allowed) & {m for t in failed for m in t.mistakes} if failed else set()
        if common:
            out[ex] = [says[m] for m in sorted(common)]
    return out
