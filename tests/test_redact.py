"""`facefind redact` and `publish-check` end to end on real photos: consented faces kept, everyone
else hidden, opt-outs and lapsed consents hide again, manifests round trip, bad input refused."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from .conftest import MULTI, OBAMA, run_cli, run_json

TWO = MULTI / "two_people.jpg"  # Obama on the left half, Biden on the right
PUBLICATION = ("--by", "the person", "--expires", "2099-12-31", "--evidence", "form 2026-9")


@pytest.fixture
def db(fr_copy: Path) -> Path:
    return fr_copy


def obama_id(db: Path) -> int:
    people = run_json("people", "list", "--all", db=db)
    return next(p["id"] for p in people if "Barack_Obama" in p["faces"][0]["path"])


def redact(db: Path, out: Path, *args: str | Path, photo: Path = TWO, ok: tuple[int, ...] = (0,)) -> dict:
    return run_json("redact", photo, "--out", out, "--purpose", "club newsletter", *args, db=db, ok_codes=ok)


def manifest_of(report: dict) -> dict:
    return json.loads(Path(report["photos"][0]["manifest"]).read_text())


def face(manifest: dict, left: bool) -> dict:
    """The big face on the left (Obama) or right (Biden) half of two_people.jpg."""
    big = [f for f in manifest["faces"] if f["box"]["h"] > 150]
    return next(f for f in big if (f["box"]["x"] < 563) == left)


def region(path: Path, box: dict) -> np.ndarray:
    image = cv2.imread(str(path))
    x, y, w, h = (round(box[k]) for k in "xywh")
    return image[y : y + h, x : x + w].astype(np.int16)


def visible(output: Path, box: dict) -> bool:
    """Whether facefind's indexing detector still finds a face at `box` in the output."""
    from facefind.faces.opencv import OpenCVBackend

    found = OpenCVBackend().detect(cv2.imread(str(output)))
    x, y, w, h = (box[k] for k in "xywh")
    for d in found:
        bx, by, bw, bh = d.box
        iw = max(0.0, min(x + w, bx + bw) - max(x, bx))
        ih = max(0.0, min(y + h, by + bh) - max(y, by))
        if iw * ih / (w * h + bw * bh - iw * ih) >= 0.3:
            return True
    return False


def changed(output: Path, box: dict) -> float:
    """Mean absolute pixel change of the output against the input inside `box`."""
    return float(np.abs(region(output, box) - region(TWO, box)).mean())


def test_consented_person_kept_others_hidden_until_consent_lapses_or_opt_out(
    db: Path, tmp_path: Path
) -> None:
    person = obama_id(db)
    granted = run_json("consent", "add", str(person), "--scope", "publication", *PUBLICATION, db=db)

    report = redact(db, tmp_path / "out")
    (photo,) = report["photos"]
    output = Path(photo["output"])
    assert output == tmp_path / "out" / "two_people.jpg" and photo["kept_persons"] == [person]
    manifest = manifest_of(report)
    obama, biden = face(manifest, left=True), face(manifest, left=False)
    assert (obama["decision"], obama["reason"], obama["consent_id"]) == ("kept", "consent", granted["id"])
    assert (biden["decision"], biden["reason"]) == ("hidden", "unknown")
    assert all(f["decision"] == "hidden" for f in manifest["faces"] if f is not obama)
    assert changed(output, obama["box"]) < 4  # JPEG re-encoding only
    assert visible(output, obama["box"]) and not visible(output, biden["box"])
    assert changed(output, biden["box"]) > 10
    assert not Image.open(output).getexif()  # no EXIF (GPS, regions) carried over
    assert manifest["input_sha256"] and manifest["metadata"] == "stripped"
    entry = run_json("audit", "show", db=db)[-1]
    assert (entry["action"], entry["purpose"]) == ("redact", "club newsletter")
    assert entry["details"]["kept"][0]["consent_id"] == granted["id"]

    # Nothing is overwritten: a second run into the same folder leaves the first output alone.
    before = output.read_bytes()
    again = redact(db, tmp_path / "out", "--style", "fill", ok=(3,))
    assert again["photos"] == [] and "never overwritten" in again["errors"][0]["error"]
    assert output.read_bytes() == before
    # Identifying faces is a search: no purpose, no redaction (and nothing written).
    refused = run_cli("redact", TWO, "--out", tmp_path / "nopurpose", db=db)
    assert refused.returncode != 0 and "purpose" in refused.stderr
    assert not (tmp_path / "nopurpose").exists()

    # Withdrawn: hidden again.
    run_json("consent", "withdraw", str(granted["id"]), db=db)
    withdrawn = face(manifest_of(redact(db, tmp_path / "withdrawn")), left=True)
    assert (withdrawn["decision"], withdrawn["reason"]) == ("hidden", "withheld")
    assert not visible(tmp_path / "withdrawn" / "two_people.jpg", withdrawn["box"])

    # Expired (a date cannot be in the past when recorded): hidden again.
    renewed = run_json("consent", "add", str(person), "--scope", "publication", *PUBLICATION, db=db)
    assert face(manifest_of(redact(db, tmp_path / "renewed")), left=True)["decision"] == "kept"
    with sqlite3.connect(db) as con:
        con.execute("update consents set expires_on = '2020-01-01' where id = ?", (renewed["id"],))
    assert face(manifest_of(redact(db, tmp_path / "expired")), left=True)["decision"] == "hidden"

    # Opted out: hidden even with --keep consented and an active publication consent.
    run_json("consent", "add", str(person), "--scope", "publication", *PUBLICATION, db=db)
    run_json("optout", "add", OBAMA, db=db)
    opted = face(manifest_of(redact(db, tmp_path / "optout", "--keep", "consented")), left=True)
    assert (opted["decision"], opted["reason"]) == ("hidden", "optout")
    assert run_json("audit", "verify", db=db)["ok"]


def test_manifest_round_trip_reviewer_unhides_and_adds_but_never_over_an_opt_out(
    db: Path, tmp_path: Path
) -> None:
    first = redact(db, tmp_path / "a", "--keep", "none", "--style", "pixelate")
    manifest = manifest_of(first)
    assert {(f["decision"], f["reason"]) for f in manifest["faces"]} == {("hidden", "keep-none")}
    biden = face(manifest, left=False)
    biden["decision"] = "kept"  # the reviewer un-hides one face and draws a box the detector missed
    drawn = {"x": 600.0, "y": 400.0, "w": 80.0, "h": 80.0}
    manifest["faces"].append({"box": drawn, "decision": "hidden", "reason": "reviewer"})
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(manifest))

    again = run_json(
        "redact",
        "--manifest",
        edited,
        "--out",
        tmp_path / "b",
        "--purpose",
        "review",
        "--style",
        "fill",
        db=db,
    )
    output = tmp_path / "b" / "two_people.jpg"
    applied = manifest_of(again)
    assert applied["style"] == "fill" and len(applied["faces"]) == len(manifest["faces"])
    assert (face(applied, left=False)["decision"], face(applied, left=False)["reason"]) == (
        "kept",
        "reviewer",
    )
    assert changed(output, biden["box"]) < 4
    assert visible(output, biden["box"]) and not visible(output, face(applied, left=True)["box"])
    assert region(output, drawn).mean() < 8  # filled black
    assert run_json("audit", "show", db=db)[-1]["details"]["manifest_applied"] is True

    # An opted-out face stays hidden whatever an edited manifest says.
    run_json("optout", "add", OBAMA, db=db)
    face(manifest, left=True)["decision"] = "kept"
    edited.write_text(json.dumps(manifest))
    vetoed = run_json("redact", "--manifest", edited, "--out", tmp_path / "c", "--purpose", "review", db=db)
    obama = face(manifest_of(vetoed), left=True)
    assert (obama["decision"], obama["reason"]) == ("hidden", "optout")
    assert not visible(tmp_path / "c" / "two_people.jpg", obama["box"])


def test_bad_input_is_refused_and_leaves_nothing_half_written(db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.jpg").write_text("not a photo")
    (tmp_path / "notes.txt").write_text("not a photo either")
    (folder / "big.jpg").write_bytes((MULTI / "obama_and_biden.jpg").read_bytes())  # 2.9 MP
    out = tmp_path / "out"
    env = {**os.environ, "FACEFIND_MAX_PIXELS": "1000000"}  # a frame over the limit
    proc = run_cli(
        "redact", folder, tmp_path / "notes.txt", "--out", out, "--keep", "none", "--json", db=db, env=env
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 3 and report["photos"] == []
    errors = {Path(e["path"]).name: e["error"] for e in report["errors"]}
    assert "not a supported image" in errors["notes.jpg"] and "MP" in errors["big.jpg"]
    assert "not a photo" in errors["notes.txt"]
    assert not out.exists() or list(out.rglob("*")) == []

    for locked in (tmp_path / "locked", tmp_path / "in" / "notes.jpg" / "out"):
        if locked.name == "locked":
            if os.geteuid() == 0:  # root writes whatever the permissions say
                continue
            locked.mkdir()
            locked.chmod(0o500)
        refused = run_cli("redact", TWO, "--out", locked, "--keep", "none", db=db)
        assert refused.returncode != 0 and "cannot be written" in refused.stderr, refused.stderr
        assert not locked.exists() or list(locked.iterdir()) == []
    bad = run_cli("redact", TWO, "--out", out, "--keep", "none", "--style", "swirl", db=db)
    assert bad.returncode != 0 and "--style" in bad.stderr


def test_publish_check_lists_photos_with_faces_lacking_publication_consent(db: Path, tmp_path: Path) -> None:
    obama = obama_id(db)  # (a publication-only consent keeps him out of the people view)
    run_json("consent", "add", str(obama), "--scope", "publication", *PUBLICATION, db=db)
    folder = tmp_path / "post"
    folder.mkdir()
    for source in (TWO, OBAMA):
        (folder / source.name).write_bytes(source.read_bytes())
    cv2.imwrite(str(folder / "empty_hall.png"), np.full((300, 400, 3), 128, np.uint8))  # no face
    result = run_json("publish-check", folder, "--purpose", "before posting", db=db)
    assert result["photos"] == 3 and [Path(p).name for p in result["clear"]] == ["empty_hall.png"]
    flagged = {Path(c["path"]).name: c for c in result["flagged"]}
    two = flagged["two_people.jpg"]
    assert two["kept"] == 1 and two["kept_persons"] == [obama] and two["reasons"]["unknown"] >= 1
    assert flagged["obama.jpg"]["kept"] == 1  # his face; the rest are small detections, hidden
    assert sorted(p.name for p in folder.iterdir()) == ["empty_hall.png", "obama.jpg", "two_people.jpg"]
    entry = run_json("audit", "show", db=db)[-1]
    assert (entry["action"], entry["purpose"]) == ("publish-check", "before posting")
    assert entry["details"]["kept_persons"] == [obama]
