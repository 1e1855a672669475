"""The data: offline by default, checked downloads that fail fast, and no `datasets` package of ours."""

import gzip
import hashlib
import io
import re
import socket
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

import coursedata
from coursedata.fetch import DataError, fetch


def test_nothing_of_ours_imports_as_datasets(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "import coursedata, importlib.util as u; print(u.find_spec('datasets'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.strip() == "None", out.stdout + out.stderr


def test_offline_loaders():
    X, y = coursedata.moons(n_samples=30, seed=1)
    assert X.shape == (30, 2) and set(y.tolist()) == {0, 1}
    d = coursedata.digits()
    assert d["x_train"].shape == (1347, 64) and d["x_test"].shape == (450, 64)
    assert float(d["x_train"].max()) <= 1.0 and d["y_train"].dtype.is_floating_point is False
    m = coursedata.mnist1d()
    assert m["x_train"].shape == (4000, 40) and m["x_test"].shape == (1000, 40)


def test_digits_as_images():
    flat, images = coursedata.digits(), coursedata.images("digits")
    assert images["x_train"].shape == (1347, 1, 8, 8) and images["x_test"].shape == (450, 1, 8, 8)
    for key in flat:
        assert flat[key].reshape(images[key].shape).equal(images[key]), key  # the same split, row by row
    assert coursedata.image_classes("digits") == [str(d) for d in range(10)]


def test_census_names_are_offline():
    names = coursedata.names()
    assert len(names) == 5163 and names == sorted(set(names))
    assert {"mary", "james", "zoe"} <= set(names)
    assert all(name.isalpha() and name.islower() and name.isascii() and 2 <= len(name) <= 11 for name in names)
    assert coursedata.registry()["names"]["kind"] == "bundled"


def test_names_from_a_text_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("Emma\n\n olivia \nAVA\n")
    assert coursedata.names(str(path)) == ["emma", "olivia", "ava"]


def test_names_from_a_missing_file_fail_in_one_line(tmp_path):
    with pytest.raises(coursedata.DataError, match="census") as info:
        coursedata.names(str(tmp_path / "names.txt"))
    assert "\n" not in str(info.value) and str(tmp_path / "names.txt") in str(info.value)


def test_pydoc_text_is_offline_and_deterministic():
    """The offline text: the documentation topics shipped with Python, joined in sorted key order, every time."""
    from pydoc_data.topics import topics

    text = coursedata.text()
    assert isinstance(text, str) and len(text) > 300_000 and text == coursedata.text("pydoc")
    assert text == "".join(topics[key] for key in sorted(topics))
    assert text.startswith(topics[min(topics)]) and len(set(text)) < 200  # a character vocabulary stays small
    assert coursedata.registry()["pydoc"]["kind"] == "bundled"


def test_text_from_a_file_and_an_unknown_name(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n", encoding="utf-8")
    assert coursedata.text(str(path)) == path.read_text(encoding="utf-8")
    with pytest.raises(coursedata.DataError, match="pydoc, tiny_shakespeare") as info:
        coursedata.text(str(tmp_path / "missing.txt"))
    assert "\n" not in str(info.value)


def test_tiny_shakespeare_without_a_network_fails_at_once(tmp_path, monkeypatch):
    """No network: one line that names the file, says what to do instead, and where a copy would go."""
    _no_network(monkeypatch)
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(
        DataError, match=re.escape("cannot download https://raw.githubusercontent.com/karpathy/")
    ) as info:
        coursedata.text("tiny_shakespeare")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message and "offline dataset" in message and str(tmp_path / "tiny_shakespeare") in message


def test_a_cached_tiny_shakespeare_is_checked_and_read(tmp_path, monkeypatch):
    """A copy in the cache with the registry's sha256 is read without a network; a different file is not."""
    _no_network(monkeypatch)
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path))
    [entry] = coursedata.registry()["tiny_shakespeare"]["files"]
    (tmp_path / "tiny_shakespeare").mkdir()
    (tmp_path / "tiny_shakespeare" / "input.txt").write_text("not Shakespeare\n")
    with pytest.raises(DataError, match="cannot download"):  # a wrong copy is dropped, then fetched
        coursedata.text("tiny_shakespeare")
    monkeypatch.setattr(coursedata, "fetch", lambda url, sha256, cache: cache / "input.txt")
    (tmp_path / "tiny_shakespeare" / "input.txt").write_text("Shall I compare thee\n", encoding="utf-8")
    assert coursedata.text("tiny_shakespeare") == "Shall I compare thee\n"
    assert entry["url"].endswith("/tinyshakespeare/input.txt") and len(entry["sha256"]) == 64


def test_image_sets_are_registered():
    sets, sources = coursedata.registry("images"), coursedata.registry()
    assert set(sets) == {"digits", "mnist", "fashion_mnist", "cifar10"} and set(sets) <= set(sources)
    for name, spec in sets.items():
        assert len(spec["classes"]) == 10 and spec["channels"] in (1, 3), name
    with pytest.raises(coursedata.DataError, match="unknown image set 'svhn'"):
        coursedata.images("svhn")


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
    from course.config import Limits
    from course.sandbox.client import Worker

    tmp_path.chmod(0o755)  # the sandbox's user is not root: the cache must be readable by others
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path))
    coursedata.prepare("mnist1d")
    [cached] = tmp_path.glob("mnist1d-*.npz")
    probes = (
        "def peek(nb):\n    import coursedata, os\n"
        "    return [os.path.isfile(os.path.join(os.environ['COURSE_DATA_CACHE'], 'mnist1d-seed42.npz')),"
        " float(coursedata.mnist1d()['x_train'].sum())]\n"
    )
    w = Worker([["1", "pass"]], Limits(60, 2048, 64, 16, 256), 60)
    try:
        w.start()
        seen, total = w.call("k", probes, "peek", {}, 60)
    finally:
        w.stop()
    assert seen is True and cached.name == "mnist1d-seed42.npz"
    assert total == pytest.approx(float(coursedata.mnist1d()["x_train"].sum()))


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_image_downloads_without_a_network_fail_at_once(name, tmp_path, monkeypatch):
    """No network: one line that names the file, says what to do instead, and where a copy would go."""
    _no_network(monkeypatch)
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(DataError, match="cannot download https://") as info:
        coursedata.images(name)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message and "offline dataset" in message
    folder = coursedata.registry()[name].get("folder")
    assert str(tmp_path / folder if folder else tmp_path) in message


def test_fashion_mnist_files_are_cached_apart_from_mnist():
    """Both use MNIST's file names: in one folder each would replace the other on every load."""
    names = {
        n: {f["url"].rsplit("/", 1)[-1] for f in coursedata.registry()[n]["files"]} for n in ("mnist", "fashion_mnist")
    }
    assert names["mnist"] == names["fashion_mnist"]
    assert coursedata.registry()["fashion_mnist"]["folder"] != coursedata.registry()["mnist"].get("folder")


def test_idx_files_are_read_as_arrays(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + images.tobytes()))
    assert np.array_equal(coursedata._idx(path), images)


def test_cifar10_binary_records(tmp_path):
    """CIFAR-10's binary version: 1 label byte, then the red, green and blue 32x32 planes of each image."""
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}.bin": rng.integers(0, 256, (3, 3073), dtype=np.uint8) for i in (1, 2)}
    batches["test_batch.bin"] = rng.integers(0, 256, (2, 3073), dtype=np.uint8)
    for records in batches.values():
        records[:, 0] %= 10
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, records in [*batches.items(), ("batches.meta.txt", None)]:
            payload = records.tobytes() if records is not None else b"airplane\nautomobile\n"
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    out = coursedata._cifar_records(archive)
    train = np.concatenate([batches["data_batch_1.bin"], batches["data_batch_2.bin"]])
    assert out["x_train"].shape == (6, 3, 32, 32) and out["x_test"].shape == (2, 3, 32, 32)
    assert np.array_equal(out["y_train"], train[:, 0]) and out["y_train"].dtype == np.int64
    assert np.array_equal(out["x_train"][4, 1].ravel(), train[4, 1 + 1024 : 1 + 2048])  # image 4, green plane
    assert np.array_equal(out["y_test"], batches["test_batch.bin"][:, 0])
