"""The student's seat, in a real browser: JupyterLab with nbgrader's extension, a released notebook, one
exercise filled in, its cells run, nbgrader's Validate, and the same notebook graded by `course check`. And the
instructor's: a small class graded, its class report (`course report`), and formgrader's Manual Grading page.

Run by `make test-browser` (part of `make test`). Needs Debian's chromium (`make browser` installs it) and
the pinned `playwright` package; Playwright's own browser download is never used. Screenshots go to
screenshots/ at the top of the repository (or $COURSE_SCREENSHOTS).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import expect, sync_playwright

from course import notebooks

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("COURSE_SCREENSHOTS", REPO / "screenshots"))
NOTEBOOK = "01_autograd_engine"
EXERCISE, CELL = "value_ops", "value"  # exercise 1 of week 1 and the solution cell it grades
PASSED = "Exercise 1: all quick checks passed."
SETTINGS = {  # as a student would set them once: no news pop-up; every cell in the page, not only the visible
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter(command: str, root: Path, home: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """`jupyter lab` or `jupyter server` on 127.0.0.1, serving `root` from there; yields (url, token)."""
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            str(BIN / "jupyter"),
            command,
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
        ],
        cwd=root,  # formgrader reads the course's nbgrader_config.py from here
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / f"{command}.log", "w"),  # noqa: SIM115 - the server writes to it for as long as it runs
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (
                    f"jupyter {command} exited: {(home / f'{command}.log').read_text()[-2000:]}"
                )
                assert time.monotonic() < deadline, f"jupyter {command} did not answer within 90 s"
                time.sleep(0.5)
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1, serving a student's copy of release/; yields (url, token, workspace)."""
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM}: Debian's chromium is needed (make browser installs it)"
    home = tmp_path_factory.mktemp("student")
    work = home / "work"
    shutil.copytree(REPO / "release", work)
    for name, value in SETTINGS.items():
        (home / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (home / "settings" / name).write_text(json.dumps(value))
    # settings, workspaces and runtime files of this student alone: a layout saved by an earlier JupyterLab in
    # ~/.jupyter would otherwise reopen its notebooks beside ours
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTER_RUNTIME_DIR": str(home / "rt"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    with jupyter("lab", work, home, env) as (url, token):
        yield url, token, work


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM}: Debian's chromium is needed (make browser installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(lab, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield page
    page.close()


def student_answer() -> str:
    """The reference code of the exercise, as a student would type it (without nbgrader's markers)."""
    code = notebooks.regions(REPO / "solutions" / "week1" / f"{NOTEBOOK}.py")[CELL]
    markers = ("### BEGIN SOLUTION", "### END SOLUTION")
    return "\n".join(line for line in code.splitlines() if line.strip() not in markers)


def shot(page, name: str, notebook: str = f"week1-{NOTEBOOK}", full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{notebook}-{name}.png"), full_page=full_page)


def wait_idle(page) -> None:
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=120_000)


def run_up_to(page, cell) -> None:
    """Run > Run All Above Selected Cell, then Shift+Enter on the cell itself, as a student does."""
    cell.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
    page.get_by_text("Run All Above Selected Cell").click()
    wait_idle(page)
    cell.click()
    page.keyboard.press("Shift+Enter")
    wait_idle(page)


def test_a_student_fills_in_an_exercise_runs_it_and_validates(lab, page):
    url, token, work = lab
    released = nbformat.read(str(work / "week1" / f"{NOTEBOOK}.ipynb"), as_version=4)
    index = {notebooks.nbgrader_meta(c).get("grade_id"): i for i, c in enumerate(released.cells)}

    page.goto(f"{url}/lab/tree/week1/{NOTEBOOK}.ipynb?reset&token={token}")
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells).to_have_count(len(released.cells), timeout=60_000)
    wait_idle(page)
    shot(page, "1-opened")

    # the exercise as released: the check cell fails with a message that says what is missing
    solution, check = cells.nth(index[CELL]), cells.nth(index[EXERCISE])
    run_up_to(page, check)
    expect(check.locator(".jp-OutputArea")).to_contain_text("NotImplementedError")

    # the student types an answer into the solution cell, then runs everything up to the check again
    solution.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(student_answer())
    page.keyboard.press("Escape")
    run_up_to(page, check)
    expect(check.locator(".jp-OutputArea")).to_contain_text(PASSED)
    check.scroll_into_view_if_needed()
    shot(page, "2-exercise-1-checked")

    page.keyboard.press("Control+S")
    expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=30_000)

    # nbgrader's Validate runs the whole notebook in a fresh kernel: exercise 1 passes, the next one does not
    page.get_by_text("Validate", exact=True).click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Validation Results", timeout=180_000)
    expect(dialog).to_contain_text("NotImplementedError")
    assert "Quick checks for exercise 1" not in dialog.inner_text(), "exercise 1 should pass nbgrader's validation"
    shot(page, "3-validated")
    dialog.get_by_role("button").last.click()


def test_the_saved_notebook_gets_exercise_1s_points_from_course_check(lab, tmp_path):
    """The self-learner's next step (README): `course check week1 <their notebook>`, graded on that notebook
    alone, on what the browser saved."""
    _, _, work = lab
    saved = work / "week1" / f"{NOTEBOOK}.ipynb"
    out = tmp_path / "scores.json"
    run = subprocess.run(
        [str(BIN / "course"), "check", "week1", str(saved), "--json", str(out), "--reports", str(tmp_path / "reports")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.is_file(), run.stdout[-2000:] + run.stderr[-2000:]
    [result] = json.loads(out.read_text())["submissions"]
    assert result["notebook"] == NOTEBOOK
    scores = {}
    for t in result["tests"]:
        got, most = scores.get(t["exercise"], (0, 0))
        scores[t["exercise"]] = (got + t["score"], most + t["max_score"])
    assert scores[EXERCISE][0] == pytest.approx(scores[EXERCISE][1]) and scores[EXERCISE][1] > 0, scores
    assert all(got == 0 for ex, (got, _) in scores.items() if ex != EXERCISE), scores


# Rendered markdown, code and typeset formulas removed: any `$` or TeX command left is a formula MathJax could not
# read (an unbalanced `$`, a `{` too many), shown raw to the student; MathJax's own error boxes count too.
UNTYPESET = """() => [...document.querySelectorAll('.jp-RenderedMarkdown')].flatMap(cell => {
    if (cell.querySelector('mjx-merror')) return [cell.querySelector('mjx-merror').textContent];
    const copy = cell.cloneNode(true);
    copy.querySelectorAll('code, pre, mjx-container, script').forEach(e => e.remove());
    return (copy.textContent.match(/.{0,30}(\\$|\\\\[a-zA-Z]+).{0,30}/g) || []);
})"""

RELEASED = sorted(p.relative_to(REPO / "release").as_posix() for p in (REPO / "release").glob("*/*.ipynb"))


@pytest.mark.parametrize("path", RELEASED)
def test_every_released_notebook_renders_without_errors(lab, page, path):
    """Each student notebook opens, every cell renders, and every formula typesets (MathJax shows a formula it
    cannot read as a red error box, which a student would otherwise be the first to find)."""
    url, token, work = lab
    cells = nbformat.read(str(work / path), as_version=4).cells
    page.goto(f"{url}/lab/tree/{path}?reset&token={token}")  # reset: this notebook alone in the window
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(len(cells), timeout=60_000)
    markdown = [c.source for c in cells if c.cell_type == "markdown"]
    if any("$" in text for text in markdown):
        expect(page.locator("mjx-container").first).to_be_attached(timeout=30_000)
        page.wait_for_timeout(1000)  # typesetting runs cell by cell
    found = page.evaluate(UNTYPESET)
    shot(page, "opened", notebook=path.replace("/", "-").removesuffix(".ipynb"))
    assert not found, f"{path}: formulas that did not typeset, as the student sees them: {found[:5]}"


# -- the instructor's seat: a small class graded, its class report, formgrader's queue ------------------------


@pytest.fixture(scope="module")
def graded_class(released_mini, tmp_path_factory):
    """The two-exercise test course with two students graded by `course grade` (ada right, bob's add
    multiplies), ada's written answer scored by hand, bob's still to grade, and `course report` run."""
    from course import config
    from helpers import GOOD_ADD, GOOD_SCALE, run_course, submission

    root = tmp_path_factory.mktemp("instructor") / "mini"
    shutil.copytree(released_mini, root)
    shutil.copyfile(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    course = config.load(root)
    submission(course, "ada", {"add-impl": GOOD_ADD, "scale-impl": GOOD_SCALE})
    submission(course, "bob", {"add-impl": "def add(a, b):\n    return a * b", "scale-impl": GOOD_SCALE})
    env = {k: v for k, v in os.environ.items() if k != "COURSE_ROOT"}
    done = run_course("grade", "toy", "submitted", cwd=root, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    score_written_answer(root, "ada", 1)
    done = run_course("report", "toy", cwd=root, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root


def score_written_answer(root: Path, student: str, score: float) -> None:
    """As formgrader does when a grader types the score of a written answer: its manual score, out of the queue."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        grade = gb.find_grade("essay", "adder", "toy", student)
        grade.manual_score, grade.needs_manual_grade = score, False
        gb.db.commit()


def test_the_class_report_shows_its_histograms_and_ranked_mistakes(graded_class, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.goto((graded_class / "reports" / "_class" / "toy" / "index.html").as_uri())
    expect(page.get_by_role("heading", name="Named mistakes, by how many students' answers match them")).to_be_visible()
    first = page.locator("#mistakes-table tbody tr").first
    expect(first).to_contain_text("add multiplies a and b")
    expect(first).to_contain_text("bob")
    expect(page.locator("#lost-table tbody tr").first).to_contain_text("Add two numbers")
    images = page.locator("#histograms img")
    expect(images).to_have_count(3)  # add, scale, and the written answer ada's grader scored
    images.last.scroll_into_view_if_needed()
    page.wait_for_function("[...document.querySelectorAll('#histograms img')].every(i => i.complete)")
    widths = page.eval_on_selector_all("#histograms img", "images => images.map(i => i.naturalWidth)")
    assert len(widths) == 3 and all(w > 0 for w in widths), widths
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "class-report", notebook="toy", full_page=True)
    page.close()


def test_formgrader_lists_nothing_to_grade_by_hand_once_the_written_answers_are_scored(graded_class, browser):
    """formgrader's Manual Grading page for the notebook, in the browser: bob's written answer waits for a
    score while ada's, scored, does not; once bob's is scored too, no submission is flagged."""
    home = graded_class.parent
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "rt"), "COURSE_ROOT": str(graded_class)}
    with jupyter("server", graded_class, home, env) as (url, token):
        # the token on every request: formgrader's page fetches its table from formgrader's API
        context = browser.new_context(
            viewport={"width": 1200, "height": 800}, extra_http_headers={"Authorization": f"token {token}"}
        )
        page = context.new_page()

        def needs_manual_grade() -> dict[str, bool]:
            page.goto(f"{url}/formgrader/gradebook/toy/adder")
            rows = page.locator("#main-table tr")
            expect(rows).to_have_count(2, timeout=60_000)
            expect(rows.first.locator(".name")).not_to_be_empty()
            return page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll('#main-table tr')].map(row => [
                    row.querySelector('.name a.name-shown').textContent,
                    row.querySelector('.needs-manual-grade').dataset.search === 'needs manual grade']))"""
            )

        assert needs_manual_grade() == {"ada": False, "bob": True}
        shot(page, "formgrader-bob-waits", notebook="toy")
        score_written_answer(graded_class, "bob", 0)
        assert needs_manual_grade() == {"ada": False, "bob": False}
        shot(page, "formgrader-queue-empty", notebook="toy")
        context.close()
