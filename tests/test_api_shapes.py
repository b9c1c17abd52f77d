"""What a client sends has the shape of what it reads, and the API's errors speak the API's words.

A consent read from `/v1/consents` (scope a list, `expires_on`) can be sent back as it is; the
older request shape (scope a comma-separated string, `expires`) still works. A value out of range
is named as the API and the library name it (`top_k 0`), while the CLI keeps its flag (`--top-k 0`).
Arrays given to the library are BGR (as OpenCV's); RGB arrays (face_recognition, Pillow) say so
with `rgb=True`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import facefind
from facefind.errors import ImageError
from facefind.policy import Role

from .conftest import BIDEN, OBAMA, new_catalog, run_cli
from .server import Server, serve

LATER = (date.today() + timedelta(days=400)).isoformat()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    photos = folder / "photos"
    photos.mkdir()
    for name in ("obama.jpg", "obama again.jpg"):  # a person: two faces
        shutil.copy(OBAMA, photos / name)
    shutil.copy(BIDEN, photos / "biden.jpg")
    db = new_catalog(folder / "catalog.db")
    with facefind.open(db) as ff:
        assert ff.index(photos).indexed == 3
    return db


@pytest.fixture(scope="module")
def server(catalog: Path) -> Iterator[Server]:
    with serve(catalog, catalog.parent, workers=1) as running:
        yield running


def test_a_consent_read_from_the_api_can_be_sent_back_as_it_is(server: Server) -> None:
    dpo = server.client(Role.dpo)
    person = server.client(Role.reviewer).get("/v1/people").json()[0]["id"]
    sent = {
        "person_id": person,
        "given_by": "the person",
        "scope": ["search", "results"],
        "expires_on": LATER,
        "evidence": "form 12",
    }
    added = dpo.post("/v1/consents", json=sent)
    assert added.status_code == 201, added.text
    assert added.json()["scope"] == ["search", "results"] and added.json()["expires_on"] == LATER
    read = next(c for c in dpo.get("/v1/consents").json() if c["id"] == added.json()["id"])
    again = dpo.post("/v1/consents", json={k: read[k] for k in sent})  # what it read, sent back
    assert again.status_code == 201, again.text
    assert {k: again.json()[k] for k in sent} == {k: read[k] for k in sent}
    older = {**sent, "scope": "search,clustering", "expires": LATER}
    del older["expires_on"]
    kept = dpo.post("/v1/consents", json=older)  # the older shape still works
    assert kept.status_code == 201 and kept.json()["scope"] == ["search", "clustering"], kept.text
    wrong = dpo.post("/v1/consents", json={**sent, "scope": ["search", "gossip"]})
    assert wrong.status_code == 400 and "gossip" in wrong.json()["error"]["message"], wrong.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("top_k", "0", "top_k 0: give a number from 1 to 10,000"),
        ("face", "-1", "face -1: give a number from 0"),
        ("max_fpir", "1", "max_fpir 1.0: give a number above 0 and below 1"),
        ("threshold", "2", "threshold 2.0: give a number from -1 to 1"),
    ],
)
def test_api_errors_name_the_field_not_a_cli_flag(
    server: Server, field: str, value: str, message: str
) -> None:
    answer = server.client(Role.operator).post(
        "/v1/search",
        files={"photo": ("obama.jpg", OBAMA.read_bytes(), "image/jpeg")},
        data={"purpose": "test", field: value},
    )
    assert answer.status_code == 400, answer.text
    said = answer.json()["error"]["message"]
    assert said.startswith(message) and "--" not in said, said


def test_the_library_names_parameters_and_the_cli_its_flags(catalog: Path) -> None:
    with facefind.open(catalog) as ff, pytest.raises(facefind.errors.InvalidValue, match=r"^top_k 0: give"):
        ff.search(OBAMA, top_k=0, purpose="test")
    cli = run_cli("search", OBAMA, "--purpose", "t", "--top-k", "0", db=catalog)
    assert cli.returncode != 0 and "--top-k 0: give a number from 1 to 10,000" in cli.stderr, cli.stderr


def test_rgb_arrays_score_as_the_photo_does_when_said_to_be_rgb(catalog: Path) -> None:
    rgb = np.asarray(Image.open(OBAMA).convert("RGB"))  # what face_recognition.load_image_file gives
    bgr = cv2.imread(str(OBAMA))
    assert bgr is not None and np.array_equal(bgr, rgb[:, :, ::-1])

    def best(image: np.ndarray, **kw: bool) -> float:
        with facefind.open(catalog) as ff:
            return ff.search(image, purpose="test", threshold=0.0, **kw).faces[0].matches[0].similarity

    assert best(bgr) > 0.99 and best(rgb, rgb=True) > 0.99
    assert best(rgb) < 0.97  # the mistake the option exists for: RGB taken as BGR scores lower
    with facefind.open(catalog) as ff:
        assert ff.verify(rgb, bgr[:, :, ::-1].copy(), rgb=True, purpose="test").similarity > 0.99
        assert len(ff.faces(rgb, rgb=True)) == 1
        with pytest.raises(ImageError, match="rgb=True is for arrays"):
            ff.faces(OBAMA, rgb=True)
