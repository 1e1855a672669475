"""Where student code runs: the trust boundary of the grader.

- `launch` starts a worker process: its command line, the sandbox (bubblewrap), its view of the file
  system, its user id and limits.
- `server` is the worker itself, `python -m course.sandbox.server`: it runs the submission's cells and the
  suites' probes, and answers through the grader's pipes. It is the only code that runs next to untrusted
  code, so it imports nothing but `wire` and the standard library (`tests/test_layout.py` checks it).
- `wire` is the protocol between the two: length-prefixed JSON frames and raw numeric arrays, no pickles.
- `client` is the grader's side of one worker: requests with deadlines, restarts after a hang or a crash,
  and the one-sentence reasons a student reads.
"""
