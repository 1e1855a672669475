"""Downloads that are checked, cached and never hang: a file is fetched once into the cache, verified
against its sha256, and a missing network is reported at once with what to do instead."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent.parent  # datasets/
TIMEOUT = 10  # seconds to connect or between bytes


class DataError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("COURSE_DATA_CACHE", HERE / "cache"))


def registry(section: str = "datasets") -> dict:
    """A section of registry.yaml: "datasets" (every source) or "images" (what `images(name)` serves)."""
    return yaml.safe_load((HERE / "registry.yaml").read_text())[section]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, expected_sha256: str, cache: Path | None = None) -> Path:
    """The cached file for `url`, downloading it first if needed. Raises DataError with one clear line."""
    cache = cache or cache_dir()
    target = cache / url.rsplit("/", 1)[-1]
    if target.is_file():
        if sha256(target) == expected_sha256:
            return target
        target.unlink()  # a partial or corrupted copy: fetch it again
    cache.mkdir(parents=True, exist_ok=True)
    try:
        with (
            urllib.request.urlopen(url, timeout=TIMEOUT) as response,
            tempfile.NamedTemporaryFile(dir=cache, delete=False) as tmp,
        ):
            for block in iter(lambda: response.read(1 << 20), b""):
                tmp.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        offline = ", ".join(name for name, entry in registry().items() if entry.get("kind") != "download")
        raise DataError(
            f"cannot download {url} ({exc}); without a network use an offline dataset "
            f"({offline}) or copy the file into {cache}"
        ) from None
    got = sha256(Path(tmp.name))
    if got != expected_sha256:
        os.unlink(tmp.name)
        raise DataError(f"{url}: sha256 {got} does not match the registry's {expected_sha256}")
    os.replace(tmp.name, target)
    return target
