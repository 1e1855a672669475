"""What leaves the grader: every output of a graded result, and the adapters to the tools around it.

- `outputs.publish` is the publish step of `course grade`, `check` and `demo`: the terminal text, the JSON
  file, the HTML report pages, nbgrader's gradebook and the copies formgrader opens.
- `wording` holds the feedback's sentences, written once for every renderer.
- `report` renders a result: terminal text, JSON, HTML page, the formgrader copy.
- `nbgrader` is the one adapter to nbgrader (its API, its gradebook, its database URL, alembic).
- `classreport` writes the class report of a graded assignment (`course report`); `similarity` the pairs of
  students whose solution code is most alike, through copydetect (`course similarity`).
- `export` writes grades for an LMS and the students' tree; `gradescope` builds and runs the Gradescope
  autograder. A new exporter goes here, next to them.
"""
