"""The data: offline by default, checked downloads that fail fast, and no `datasets` package of ours."""
import hashlib
import subprocess
import sys
import time

import pytest

import coursedata
from coursedata.fetch import DataError, fetch


def test_nothing_of_ours_imports_as_datasets(tmp_path):
    out = subprocess.run([sys.executable, "-c", "import coursedata, importlib.util as u; print(u.find_spec('datasets'))"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "None", out.stdout + out.stderr


def test_offline_loaders():
    X, y = coursedata.moons(n_samples=30, seed=1)
    assert X.shape == (30, 2) and set(y.tolist()) == {0, 1}
    d = coursedata.digits()
    assert d["x_train"].shape == (1347, 64) and d["x_test"].shape == (450, 64)
    assert float(d["x_train"].max()) <= 1.0 and d["y_train"].dtype.is_floating_point is False
    m = coursedata.mnist1d()
    assert m["x_train"].shape == (4000, 40) and m["x_test"].shape == (1000, 40)


def test_registry_lists_checksums_for_every_download():
    for name, entry in coursedata.registry().items():
        for f in entry.get("files", []):
            assert len(f["sha256"]) == 64 and f["url"].startswith("https://"), name


def test_fetch_checks_the_sha256(tmp_path):
    src = tmp_path / "payload.bin"
    src.write_bytes(b"digits")
    good = hashlib.sha256(b"digits").hexdigest()
    got = fetch(src.as_uri(), good, cache=tmp_path / "cache")
    assert got.read_bytes() == b"digits"
    with pytest.raises(DataError, match="does not match"):
        fetch(src.as_uri(), "0" * 64, cache=tmp_path / "other")


def test_fetch_without_a_network_fails_at_once(tmp_path):
    start = time.monotonic()
    with pytest.raises(DataError, match="cannot download"):
        fetch("http://127.0.0.1:9/mnist.gz", "0" * 64, cache=tmp_path)
    assert time.monotonic() - start < 15


def test_prepared_cache_is_what_a_sandboxed_worker_reads(tmp_path, monkeypatch):
    from course.runner import Worker
    from course.sandbox import Limits
    tmp_path.chmod(0o755)  # the sandbox's user is not root: the cache must be readable by others
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path))
    coursedata.prepare("mnist1d")
    [cached] = tmp_path.glob("mnist1d-*.npz")
    probes = ("def peek(nb):\n    import coursedata, os\n"
              "    return [os.path.isfile(os.path.join(os.environ['COURSE_DATA_CACHE'], 'mnist1d-seed42.npz')),"
              " float(coursedata.mnist1d()['x_train'].sum())]\n")
    w = Worker([["1", "pass"]], Limits(60, 2048, 64, 16, 256), 60, sandboxed=True)
    try:
        w.start()
        seen, total = w.call("k", probes, "peek", {}, 60)
    finally:
        w.stop()
    assert seen is True and cached.name == "mnist1d-seed42.npz"
    assert total == pytest.approx(float(coursedata.mnist1d()["x_train"].sum()))
