"""Index roots, the job queue, crops of swapped photos and upload bombs, against a real `facefind serve`.

A key limited to collection `desk` may index only under desk's roots (never through `..` or a
link leading out, and the refusal says nothing about what lies outside); index jobs queue beyond
the server's and the key's limits; a crop is cut only from the very photo that was indexed.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import facefind
from facefind.errors import Refused
from facefind.policy import Role

from .conftest import FR, OBAMA, run_cli, run_json
from .server import Server, finished, serve_copy

DESK_PHOTOS = sorted(FR.glob("*/*.jpg"))[:4]
FAMILY_PHOTO = FR / "Joe_Biden" / "biden.jpg"
LIMITS = {"FACEFIND_MAX_JOBS": "2", "FACEFIND_MAX_JOBS_PER_KEY": "1", "FACEFIND_MAX_QUEUED_PER_KEY": "2"}
COLLECTION = {"owner": "news", "basis": "own", "retention": "1y"}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Setup:
    def __init__(self, server: Server, base: Path, desk_key: str) -> None:
        self.server, self.base, self.desk_key = server, base, desk_key
        self.desk, self.family = base / "desk", base / "family"

    def desk_client(self) -> httpx.Client:
        return self.server.client(key=self.desk_key)


@pytest.fixture(scope="module")
def setup(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("roots").resolve()
    desk, family = base / "desk", base / "family"
    desk.mkdir()
    family.mkdir()
    for photo in DESK_PHOTOS:
        shutil.copy(photo, desk / f"{photo.parent.name}-{photo.name}")
    shutil.copy(FAMILY_PHOTO, family / "biden.jpg")
    (desk / "escape").symlink_to(family)  # a folder link leading out of the root
    (desk / "linked.jpg").symlink_to(family / "biden.jpg")  # a file link leading out
    (base / "to-desk").symlink_to(desk)
    with environment(LIMITS), serve_copy(fr_db, tmp_path_factory.mktemp("roots-server")) as server:
        with server.client(Role.admin) as admin:
            # The root is given through a link: it is stored resolved.
            made = admin.post(
                "/v1/collections", json={"name": "desk", **COLLECTION, "roots": [str(base / "to-desk")]}
            )
            assert made.status_code == 201, made.text
            made = admin.post(
                "/v1/collections", json={"name": "family", **COLLECTION, "roots": [str(family)]}
            )
            assert made.status_code == 201, made.text
            key = admin.post(
                "/v1/keys", json={"name": "desk-op", "role": "operator", "collections": ["desk"]}
            )
            assert key.status_code == 201, key.text
        yield Setup(server, base, key.json()["key"])


def test_roots_are_set_by_an_admin_stored_resolved_and_listed(setup: Setup) -> None:
    with setup.server.client(Role.admin) as admin, setup.desk_client() as desk:
        listed = {c["name"]: c for c in admin.get("/v1/collections").json()}
        assert listed["desk"]["roots"] == [str(setup.desk)]
        assert desk.get("/v1/collections").json()[0]["roots"] == [str(setup.desk)]
        missing = admin.post(
            "/v1/collections", json={"name": "x", **COLLECTION, "roots": [str(setup.base / "nowhere")]}
        )
        assert missing.status_code == 400 and "no such folder" in missing.json()["error"]["message"]
        changed = admin.put(
            "/v1/collections/family/roots", json={"roots": [str(setup.family), str(setup.desk)]}
        )
        assert changed.status_code == 200 and changed.json()["roots"] == sorted(
            [str(setup.family), str(setup.desk)]
        )
        back = admin.put("/v1/collections/family/roots", json={"roots": [str(setup.family)]})
        assert back.json()["roots"] == [str(setup.family)], back.text
        assert desk.put("/v1/collections/desk/roots", json={"roots": ["/"]}).status_code == 403
        entries = setup.server.client(Role.auditor).get("/v1/audit", params={"action": "collection"}).json()
        assert any("roots" in str(e["details"]) for e in entries)


def test_a_desk_key_cannot_index_outside_desks_roots(setup: Setup) -> None:
    desk, family = setup.desk, setup.family
    outside = [
        "/etc",
        "/",
        "/etc/passwd",
        "~root",
        str(family),
        str(desk / ".." / "family"),
        str(desk / "escape"),
        str(desk / "escape" / "biden.jpg"),
        str(desk / "linked.jpg"),
        str(desk / "nowhere"),
        "/no/such/folder",
    ]
    with setup.desk_client() as client:
        before = len(client.get("/v1/index-jobs").json())
        messages = set()
        for path in outside:
            refused = client.post("/v1/index-jobs", json={"path": path, "collection": "desk"})
            assert refused.status_code == 403, (path, refused.text)
            messages.add(refused.json()["error"]["message"].replace(repr(path), "PATH"))
        assert len(messages) == 1, messages  # the same words whether the path exists or not
        (message,) = messages
        assert "does not exist" not in message and "folder" in message and str(family) not in message
        assert len(client.get("/v1/index-jobs").json()) == before  # no job was made
        other = client.post("/v1/index-jobs", json={"path": str(family), "collection": "family"})
        assert other.status_code == 403  # the key's collection limit comes first


def test_a_collection_without_roots_cannot_be_indexed_through_the_service(setup: Setup) -> None:
    with setup.server.client(Role.admin) as admin, setup.server.client(Role.operator) as operator:
        assert admin.post("/v1/collections", json={"name": "rootless", **COLLECTION}).status_code == 201
        refused = operator.post("/v1/index-jobs", json={"path": str(setup.desk), "collection": "rootless"})
        assert refused.status_code == 403, refused.text
        assert "facefind collection update rootless --root DIR" in refused.json()["error"]["message"]


def test_links_leading_out_of_the_root_are_skipped_and_their_targets_never_named(setup: Setup) -> None:
    with setup.desk_client() as client:
        job = client.post("/v1/index-jobs", json={"path": str(setup.desk / "."), "collection": "desk"})
        assert job.status_code == 202, job.text
        job = finished(client, job.json())
        assert job["state"] == "done", job
        report = job["report"]
        assert report["indexed"] == len(DESK_PHOTOS), report
        skipped = {Path(e["path"]).name: e["error"] for e in report["error_files"]}
        assert set(skipped) == {"escape", "linked.jpg"}, skipped
        assert all("outside" in e for e in skipped.values())
        assert str(setup.family) not in str(job) and "biden" not in str(job)
        listed = client.get("/v1/errors", params={"collection": "desk"}).text
        assert str(setup.family) not in listed and "biden" not in listed


def _png_header_bomb(side: int) -> bytes:
    """A small, valid RGBA PNG of side x side one-colour pixels (~88 MP at 9380)."""
    raw = zlib.compressobj(9)
    row = b"\x00" + b"\x10\x20\x30\x40" * side
    body = b"".join(raw.compress(row) for _ in range(side)) + raw.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_an_upload_over_the_upload_pixel_limit_is_refused_from_its_header(setup: Setup) -> None:
    bomb = _png_header_bomb(9380)
    assert len(bomb) < 2**20  # under 1 MiB on the wire, 88 MP once decoded
    with setup.desk_client() as client:
        refused = client.post(
            "/v1/search", files={"photo": ("b.png", bomb, "image/png")}, data={"purpose": "t"}
        )
        assert refused.status_code == 413, refused.text
        assert "88 MP" in refused.json()["error"]["message"]


def test_jobs_queue_per_key_and_in_all_and_a_queued_job_can_be_cancelled(setup: Setup) -> None:
    big = setup.desk / "big"
    big.mkdir()
    for n, photo in enumerate(sorted(FR.glob("*/*.jpg")) * 3):
        shutil.copy(photo, big / f"{n:03}.jpg")
    request = {"path": str(big), "collection": "desk"}
    try:
        with setup.server.client(Role.operator) as operator, setup.desk_client() as desk:
            first = desk.post("/v1/index-jobs", json=request).json()
            second = desk.post("/v1/index-jobs", json=request).json()
            third = desk.post("/v1/index-jobs", json=request).json()
            assert [first["state"], second["state"], third["state"]] == ["running", "queued", "queued"]
            beyond = desk.post("/v1/index-jobs", json=request)
            assert beyond.status_code == 429, beyond.text
            assert "queued" in beyond.json()["error"]["message"]
            # Another key has a slot of its own (the server runs two jobs at once).
            other = operator.post("/v1/index-jobs", json={"path": str(setup.family), "collection": "family"})
            assert other.json()["state"] == "running", other.text
            cancelled = desk.delete(f"/v1/index-jobs/{third['id']}").json()
            assert cancelled["state"] == "cancelled", cancelled
            ended = [finished(desk, first), finished(desk, second), finished(operator, other.json())]
            assert [j["state"] for j in ended] == ["done"] * 3, ended
            assert ended[1]["report"]["unchanged"] == len(list(big.iterdir())), ended[1]
            assert finished(desk, third)["state"] == "cancelled"
    finally:
        shutil.rmtree(big)


def test_a_crop_of_a_photo_swapped_since_indexing_is_404(setup: Setup) -> None:
    with setup.desk_client() as client:
        job = finished(
            client, client.post("/v1/index-jobs", json={"path": str(setup.desk), "collection": "desk"}).json()
        )
        assert job["state"] == "done", job
        photo = next(p for p in sorted(setup.desk.glob("*.jpg")) if not p.is_symlink())
        upload = {"photo": (photo.name, photo.read_bytes(), "image/jpeg")}
        found = client.post("/v1/search", files=upload, data={"purpose": "t", "threshold": "0.9"}).json()
        (match,) = [m for f in found["faces"] for m in f["matches"] if m["path"] == str(photo)][:1]
        crop = f"/v1/faces/{match['face_id']}/crop"
        assert client.get(crop).status_code == 200
        original = photo.read_bytes()
        kept = setup.base / "kept.jpg"
        kept.write_bytes(original)
        try:
            photo.write_bytes(OBAMA.read_bytes())  # another photo at the same path
            swapped = client.get(crop)
            assert swapped.status_code == 404 and "changed since it was indexed" in swapped.text, swapped.text
            photo.unlink()
            photo.symlink_to(kept)  # a link to the very same bytes is refused too
            linked = client.get(crop)
            assert linked.status_code == 404 and "changed since it was indexed" in linked.text, linked.text
        finally:
            photo.unlink()
            photo.write_bytes(original)
        assert client.get(crop).status_code == 200


def test_roots_and_the_job_queue_in_the_catalog(backend_db: str | Path, tmp_path: Path) -> None:
    """The queue's rules hold on SQLite and PostgreSQL: the oldest queued job starts when both the
    server's and its key's limits allow, once; roots are kept resolved and replaced whole."""
    from facefind.accountability import collections
    from facefind.catalog import jobs as store

    photos = tmp_path / "photos"
    photos.mkdir()
    (tmp_path / "link").symlink_to(photos)
    with facefind.open(backend_db) as ff:
        made = ff.create_collection(
            "c", owner="t", basis="own", retention="1y", roots=[str(tmp_path / "link")]
        )
        assert made.roots == [str(photos)]
        assert collections.index_root(ff.catalog, "c", str(tmp_path / "link" / "."))[0] == photos
        with pytest.raises(Refused):
            collections.index_root(ff.catalog, "c", str(tmp_path))
        assert ff.update_collection("c", roots=[]).roots == []
        catalog = ff.catalog
        job = {"path": "p", "collection": "c", "retry_errors": False}
        a1, a2, b1 = (store.insert(catalog, "me", **job, started_by=key) for key in ("a", "a", "b"))
        assert store.queued(catalog, "a") == 2
        assert store.start_queued(catalog, "me", max_running=2, max_per_key=1) == a1
        assert store.start_queued(catalog, "me", max_running=2, max_per_key=1) == b1  # a has its one
        assert store.start_queued(catalog, "me", max_running=3, max_per_key=1) is None
        store.update(catalog, a1, state="done")
        assert store.cancel_queued(catalog, a2) and not store.cancel_queued(catalog, a2)
        assert store.start_queued(catalog, "me", max_running=2, max_per_key=1) is None


def test_the_cli_sets_and_removes_roots(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    create = ["collection", "create", "c", "--owner", "t", "--basis", "own", "--retention", "1y"]
    assert run_json(*create, "--root", one, "--root", two, db=db)["roots"] == [str(one), str(two)]
    assert run_json("collection", "update", "c", "--remove-root", one, db=db)["roots"] == [str(two)]
    missing = run_cli("collection", "update", "c", "--root", tmp_path / "nowhere", db=db)
    assert missing.returncode == 1 and "no such folder" in missing.stderr
    unknown = run_cli("collection", "update", "c", "--remove-root", one, db=db)
    assert unknown.returncode == 1 and "has no index root" in unknown.stderr
    listed = run_cli("collection", "list", db=db, check=True).stdout
    assert f"index roots {two}" in listed
    with facefind.open(db) as ff:
        changes = [e.details for e in ff.audit.entries() if e.action == "collection"]
    assert changes[-1]["roots"] == [str(two)] and changes[-1]["roots_before"] == [str(one), str(two)]


def test_a_photo_swapped_for_a_link_between_scan_and_read_is_not_read(tmp_path: Path) -> None:
    """A job scans the root, then someone swaps a photo (or the folder holding it) for a link
    leading out: the read does not follow it, and its error is the same whatever the link points
    to (an existing file or none: no existence oracle)."""
    from facefind.analysis import FileTask, process_file
    from facefind.faces import load_backend
    from facefind.ingest import scan
    from facefind.settings import Settings

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg", "sub/d.jpg", "inner.jpg"):
        shutil.copy(DESK_PHOTOS[0], root / name)
    shutil.copy(OBAMA, outside / "d.jpg")
    (root / "linked-inside.jpg").symlink_to(root / "inner.jpg")  # a link within the root: read
    tasks = {Path(t.path).name: t for t in scan(root, within=root) if isinstance(t, FileTask)}
    assert set(tasks) == {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "inner.jpg", "linked-inside.jpg"}

    for name, target in (("a.jpg", OBAMA), ("b.jpg", Path("/etc/hostname")), ("c.jpg", outside / "none")):
        (root / name).unlink()
        (root / name).symlink_to(target)
    shutil.rmtree(root / "sub")
    (root / "sub").symlink_to(outside)  # the folder swapped: sub/d.jpg now is outside/d.jpg

    settings = Settings()
    backend = load_backend(settings)
    results = {name: process_file(task, backend, settings) for name, task in tasks.items()}
    swapped = [results[n] for n in ("a.jpg", "b.jpg", "c.jpg", "d.jpg")]
    assert all(r.error and r.sha256 is None and not r.faces for r in swapped), [
        (r.task.path, r.error, r.sha256) for r in swapped
    ]
    assert len({r.error for r in swapped}) == 1, [r.error for r in swapped]  # one error for all
    assert all("hostname" not in str(r.error) and "outside" not in str(r.error) for r in swapped)
    assert results["inner.jpg"].error is None and results["linked-inside.jpg"].error is None
    assert results["linked-inside.jpg"].sha256 == results["inner.jpg"].sha256
