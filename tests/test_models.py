"""Model files: found via FACEFIND_MODELS, downloaded with sha256 check, clear error offline."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from facefind import models
from facefind.errors import ModelUnavailable

from .conftest import MODELS


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None  # type: ignore[method-assign,assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", www
    server.shutdown()


def test_resolves_from_facefind_models() -> None:
    assert models.resolve(models.YUNET, download=False) == MODELS / models.YUNET.name


def test_missing_offline_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFIND_MODELS", str(tmp_path / "empty"))
    with pytest.raises(ModelUnavailable, match="FACEFIND_MODELS"):
        models.resolve(models.YUNET, download=False, cache_dir=tmp_path / "cache")


def test_wrong_size_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / models.YUNET.name).write_bytes(b"not a model")
    monkeypatch.setenv("FACEFIND_MODELS", str(tmp_path))
    with pytest.raises(ModelUnavailable, match="damaged"):
        models.resolve(models.YUNET, download=False, cache_dir=tmp_path / "cache")


def test_download_verifies_sha256(http_root: tuple[str, Path], tmp_path: Path) -> None:
    url, www = http_root
    shutil.copy(MODELS / models.YUNET.name, www / "good.onnx")
    cache = tmp_path / "cache"
    path = models.fetch(models.YUNET, cache, url=f"{url}/good.onnx")
    assert path == cache / models.YUNET.name
    assert models.sha256_file(path) == models.YUNET.sha256


def test_bad_download_is_deleted_never_used(http_root: tuple[str, Path], tmp_path: Path) -> None:
    url, www = http_root
    data = bytearray((MODELS / models.YUNET.name).read_bytes())
    data[1000] ^= 0xFF  # one flipped byte
    (www / "bad.onnx").write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailable, match="sha256"):
        models.fetch(models.YUNET, cache, url=f"{url}/bad.onnx")
    assert list(cache.iterdir()) == []  # neither the file nor a partial download is left


def test_unreachable_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFIND_MODELS", str(tmp_path / "empty"))
    bogus = models.ModelFile(
        models.YUNET.name, "http://127.0.0.1:9/nothing.onnx", models.YUNET.sha256, models.YUNET.size
    )
    with pytest.raises(ModelUnavailable, match="download failed"):
        models.resolve(bogus, cache_dir=tmp_path / "cache")
