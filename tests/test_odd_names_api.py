"""Odd file names through the service and every export: each answer is valid JSON (UTF-8, no lone
surrogates) and gives the name back exactly through `paths.from_stored`.

A real `facefind serve` over a catalog indexed from copies of a real photo under names no text
column or JSON encoder takes as they are: bytes that are not UTF-8, backslashes that look like
escapes, control characters, right-to-left marks, names near the 255-byte limit. Hypothesis makes
more names, each indexed through the service's own index jobs.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import facefind
from facefind.paths import from_stored, json_text
from facefind.policy import Role

from .conftest import FR, OBAMA, new_catalog, run_cli
from .server import Server, finished, serve

ODD = [
    b"\xff\xfe.jpg",  # not UTF-8
    b"a\\xff.jpg",  # the escape of the name above, as a real name: must stay distinct
    b"back\\\\slash\\.jpg",
    b"ctrl\x01\x1b[2J\n\t.jpg",
    b"\xe2\x80\x8frtl\xe2\x80\xaegpj.jpg",  # RIGHT-TO-LEFT MARK, RIGHT-TO-LEFT OVERRIDE
    b"L" * 240 + b"\xc3.jpg",  # long, ending in half a UTF-8 character
]
BROKEN = b"broken \xff\\x80.jpg"  # not a photo: listed by /v1/errors

FRAGMENTS = [b"\\", b"\\x80", b"\\\\", b"\xff", b"\x80", b"\xed\xb2\x80", b"\x1b[31m", b"\n", b"\r",
             b"\x7f", b"\xc2\x85", b"\xe2\x80\x8f", b"\xe2\x80\xae", b"\xe2\x80\xa8", b"\xef\xbb\xbf",
             b"\xf0\x9f\x98\x80", b"\xc3", b"'", b'"', b"<b>", b"[red]", b"%2F", b" ", b"x" * 60]  # fmt: skip
NAMES = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(min_size=1, max_size=6)), max_size=10).map(
    lambda parts: b"n" + b"".join(parts).replace(b"\0", b"").replace(b"/", b"")[:200]
)


def strict_json(answer: httpx.Response, status: int = 200) -> Any:
    """The body as JSON any parser accepts: UTF-8, and no lone surrogate in any string."""
    assert answer.status_code == status, (answer.request.url, answer.status_code, answer.text)
    data = json.loads(answer.content.decode("utf-8", errors="strict"))
    for text in _strings(data):
        text.encode("utf-8")  # a lone surrogate (from a "\udcff" escape) fails here
    return data


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def names(paths: Any) -> set[bytes]:
    return {os.fsencode(from_stored(p)) for p in paths}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("odd-api")
    root = folder / "photos"
    (root / "first").mkdir(parents=True)
    for raw in ODD:
        shutil.copy(OBAMA, os.path.join(os.fsencode(root / "first"), raw))
    (Path(os.fsdecode(os.path.join(os.fsencode(root / "first"), BROKEN)))).write_bytes(b"not a photo")
    db = new_catalog(folder / "catalog.db")
    with facefind.open(db, actor="setup") as ff:
        ff.update_collection("default", roots=[str(root)])
        assert ff.index(root / "first").indexed == len(ODD)
        # Paths in audit details: a verification of two odd names.
        odd = [os.fsdecode(os.path.join(os.fsencode(root / "first"), raw)) for raw in ODD[:2]]
        ff.verify(odd[0], odd[1], purpose="test")
    with serve(db, folder, workers=1) as server:
        yield server, root


def check_every_route(server: Server, wanted: set[bytes]) -> None:
    """Every route that returns paths answers 200 with strict JSON naming each of `wanted`."""
    operator, reviewer, auditor = (server.client(r) for r in (Role.operator, Role.reviewer, Role.auditor))
    found = strict_json(
        operator.post(
            "/v1/search",
            files={"photo": ("query.jpg", OBAMA.read_bytes(), "image/jpeg")},
            data={"purpose": "test", "top_k": "100"},
        )
    )
    assert wanted <= names(m["path"] for m in found["faces"][0]["matches"])
    people = strict_json(reviewer.get("/v1/people"))
    assert people
    faces = [f["path"] for p in people for f in strict_json(reviewer.get(f"/v1/people/{p['id']}"))["faces"]]
    assert wanted <= names(faces)
    strict_json(operator.get("/v1/index-jobs"))
    errors = strict_json(operator.get("/v1/errors"))
    assert os.fsencode(BROKEN) in {n.rsplit(b"/", 1)[-1] for n in names(e["path"] for e in errors)}
    shown = strict_json(auditor.get("/v1/audit"))
    exported = strict_json(auditor.get("/v1/audit/export"))
    assert [e["seq"] for e in shown] == [e["seq"] for e in exported[-len(shown) :]]
    strict_json(auditor.get("/v1/report"))


def test_every_route_answers_valid_json_for_odd_names(service: tuple[Server, Path]) -> None:
    server, root = service
    check_every_route(server, {os.fsencode(root / "first") + b"/" + raw for raw in ODD})
    entries = strict_json(server.client(Role.auditor).get("/v1/audit"))
    verified = next(e["details"] for e in entries if e["action"] == "verify")
    first = os.fsencode(root / "first")
    assert names([verified["a"], verified["b"]]) == {first + b"/" + raw for raw in ODD[:2]}


BATCH = itertools.count()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES)
@example(name=b"n" + b"\\x" * 60)
def test_hypothesis_names_indexed_by_the_service(service: tuple[Server, Path], name: bytes) -> None:
    server, root = service
    folder = root / f"batch{next(BATCH)}"
    folder.mkdir()
    shutil.copy(OBAMA, os.path.join(os.fsencode(folder), name + b".jpg"))
    operator = server.client(Role.operator)
    started = operator.post("/v1/index-jobs", json={"path": str(folder), "collection": "default"})
    job = strict_json(started, 202)
    deadline = time.monotonic() + 120
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = strict_json(operator.get(f"/v1/index-jobs/{job['id']}"))
    assert job["state"] == "done" and job["report"]["indexed"] == 1, job
    check_every_route(server, {os.fsencode(folder) + b"/" + name + b".jpg"})


@given(st.recursive(st.text() | st.binary().map(os.fsdecode), lambda inner: st.lists(inner)))
def test_json_text_is_valid_utf8_and_reversible(value: Any) -> None:
    for text in _strings(value):
        safe = json_text(text)
        safe.encode("utf-8")
        assert from_stored(safe) == text
        if text.isprintable() and "\\" not in text:
            assert safe == text  # ordinary names are shown as they are


def test_cli_json_and_audit_export_write_every_name_and_line(service: tuple[Server, Path]) -> None:
    server, root = service
    db = server.db
    exported = run_cli("audit", "export", db=db)
    assert exported.returncode == 0 and "Traceback" not in exported.stderr, exported.stderr
    lines = exported.stdout.splitlines()
    entries = [json.loads(line.encode("utf-8").decode("utf-8")) for line in lines]
    assert [e["seq"] for e in entries] == list(range(entries[0]["seq"], entries[0]["seq"] + len(entries)))
    verify = next(e for e in entries if e["action"] == "verify")
    assert os.fsencode(from_stored(verify["details"]["a"])).endswith(ODD[0])
    shown = run_cli("audit", "show", "--json", db=db)
    assert shown.returncode == 0 and [e["seq"] for e in json.loads(shown.stdout)][: len(lines)] == [
        e["seq"] for e in entries
    ]
    searched = run_cli("search", OBAMA, "--purpose", "test", "--top-k", "100", "--json", db=db)
    paths = [m["path"] for m in json.loads(searched.stdout)["faces"][0]["matches"]]
    for p in paths:
        p.encode("utf-8")
    assert {os.fsencode(root / "first") + b"/" + raw for raw in ODD} <= names(paths)


def test_a_path_read_from_an_answer_can_be_sent_back_to_erase_it(
    service: tuple[Server, Path], tmp_path: Path
) -> None:
    """A DPO erases a photo whose name is not UTF-8 by sending the path as an answer gave it."""
    server, root = service
    folder = root / "erase-me"
    folder.mkdir()
    raw = b"erase \xff\\x41 me.jpg"
    shutil.copy(FR / "Kit_Harington" / "john1.jpeg", os.path.join(os.fsencode(folder), raw))
    operator = server.client(Role.operator)
    job = finished(operator, strict_json(operator.post("/v1/index-jobs", json={"path": str(folder)}), 202))
    assert job["state"] == "done" and job["report"]["indexed"] == 1, job
    found = strict_json(
        operator.post(
            "/v1/search",
            files={"photo": ("q.jpg", (FR / "Kit_Harington" / "john1.jpeg").read_bytes(), "image/jpeg")},
            data={"purpose": "subject's erasure request"},
        )
    )
    (path,) = [m["path"] for f in found["faces"] for m in f["matches"] if "erase" in m["path"]]
    assert os.fsencode(from_stored(path)) == os.path.join(os.fsencode(folder), raw)
    receipt = server.client(Role.dpo).post("/v1/erasures", json={"kind": "image", "target": path})
    assert strict_json(receipt)["images_removed"] == 1
