"""Pluggable recognizers: registering checks everything first; switching re-embeds; models never mix."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import facefind
from facefind.catalog import SCHEMA_VERSION, Catalog
from facefind.errors import CalibrationError, RecognizerError
from facefind.recognizers import BUILTINS, NEW_CATALOGS
from facefind.settings import Settings

from .conftest import FR, GLINT, MODELS, OBAMA, new_catalog, run_cli, run_json

SFACE = MODELS / "face_recognition_sface_2021dec.onnx"
BUILTIN = "sface-2021dec"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_onnx(path: Path, size: int, spatial_output: bool = False) -> Path:
    """A real ONNX model with a fixed 1x3xSIZExSIZE input: conv, then a dense layer sized for SIZE."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    side = (size - 3) // 2 + 1
    inits = [numpy_helper.from_array(rng.random((4, 3, 3, 3), np.float32), "w")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2])]
    if spatial_output:
        out = helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, side, side])
    else:
        inits.append(numpy_helper.from_array(rng.random((16, 4 * side * side), np.float32), "g"))
        nodes += [
            helper.make_node("Flatten", ["c"], ["f"]),
            helper.make_node("Gemm", ["f", "g"], ["y"], transB=1),
        ]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", [x], [out], inits), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def snapshot(db: Path) -> dict[str, list]:
    """Every row of every table: what "changes nothing" is checked against."""
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
        return {t: sorted(map(repr, con.execute(f"select * from {t}"))) for t in tables}


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return new_catalog(tmp_path / "c.db")


def test_a_bad_recognizer_gives_a_clear_error_and_changes_nothing(catalog: Path, tmp_path: Path) -> None:
    wrong_shape = tiny_onnx(tmp_path / "fixed64.onnx", 64)
    heatmap = tiny_onnx(tmp_path / "heatmap.onnx", 112, spatial_output=True)
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(1).bytes(5000))
    before = snapshot(catalog)
    cases = [
        (SFACE, "a" * 64, 112, ["has sha256 " + sha(SFACE), "--sha256 says " + "a" * 64]),
        (OBAMA, sha(OBAMA), 112, ["not an ONNX model", "image"]),
        (noise, sha(noise), 112, ["could not be read as an ONNX model"]),
        (wrong_shape, sha(wrong_shape), 112, ["does not accept a 1x3x112x112 input", "--input"]),
        (heatmap, sha(heatmap), 112, ["1x4x55x55", "one embedding vector"]),
        (tmp_path / "absent.onnx", "a" * 64, 112, ["no such file"]),
    ]
    with facefind.open(catalog) as ff:
        for path, digest, size, words in cases:
            with pytest.raises(RecognizerError) as raised:
                ff.models.add(path, name="mine", sha256=digest, input_size=size)
            assert all(w in str(raised.value) for w in words), str(raised.value)
        for name in (BUILTIN, "Mine!", "x" * 41, ""):
            with pytest.raises(RecognizerError, match=r"--name|already exists"):
                ff.models.add(SFACE, name=name, sha256=sha(SFACE))
        with pytest.raises(RecognizerError, match="not a SHA-256"):
            ff.models.add(SFACE, name="mine", sha256="0ba9fbfa")
        assert [m.name for m in ff.models.all()] == list(BUILTINS)
    assert snapshot(catalog) == before
    # the command line says the same, on stderr, with exit status 1
    proc = run_cli("models", "add", wrong_shape, "--name", "mine", "--sha256", sha(wrong_shape), db=catalog)
    assert proc.returncode == 1 and "does not accept a 1x3x112x112 input" in proc.stderr
    assert snapshot(catalog) == before
    # the same model registered at the size it takes is accepted
    with facefind.open(catalog) as ff:
        added = ff.models.add(wrong_shape, name="tiny64", sha256=sha(wrong_shape), input_size=64)
    assert (added.dim, added.input_size, added.calibration, added.active) == (16, 64, None, False)


def glint_subset(folder: Path, per_person: int = 13) -> Path:
    """12 people x 13 crops (links, not copies): 11,154 different-person pairs, enough for FMR 1e-4."""
    for person in sorted(p for p in GLINT.iterdir() if p.is_dir()):
        (folder / person.name).mkdir(parents=True)
        for crop in sorted(person.iterdir())[:per_person]:
            (folder / person.name / crop.name).symlink_to(crop)
    return folder


def test_own_recognizer_end_to_end(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for person in sorted(p for p in FR.iterdir() if p.is_dir()):
        (photos / person.name).mkdir(parents=True)
        for f in person.iterdir():
            (photos / person.name / f.name).symlink_to(f)
    query = photos / "Barack_Obama" / "obama.jpg"
    db = new_catalog(tmp_path / "c.db")
    with facefind.open(db) as ff:
        ff.index(photos, workers=1)
        people_before = {p.id: sorted(f.face_id for f in p.faces) for p in ff.people.all()}

    added = run_json(
        "models", "add", SFACE, "--name", "sface-copy", "--input", "112", "--sha256", sha(SFACE),
        "--color", "rgb", "--mean", "0", "--std", "1", db=db,
    )  # fmt: skip
    assert (added["dim"], added["path"], added["active"]) == (128, str(SFACE.resolve()), False)

    # not calibrated: neither switching to it nor searching with it
    with facefind.open(db) as ff:
        with pytest.raises(RecognizerError, match="calibrate LABELLED_DIR --model sface-copy"):
            ff.models.use("sface-copy")
        copy = ff.models.settings_for("sface-copy")
    with facefind.open(db, settings=copy) as ff, pytest.raises(CalibrationError, match="calibrat"):
        ff.search(query, purpose="test")

    table = run_json("calibrate", glint_subset(tmp_path / "glint"), "--model", "sface-copy", db=db)
    assert table["model_id"] == "sface-copy" and table["impostor_pairs"] > 10_000

    # a missing photo is listed, not a crash; its face keeps the old model's embedding
    missing = photos / "Joe_Biden" / "biden.jpg"
    missing.unlink()
    switch = run_json("models", "use", "sface-copy", db=db, ok_codes=(3,))
    assert switch["switched"] and switch["embedded"] == 22 and switch["faces_with_model"] == 22
    assert [e["path"] for e in switch["errors"]] == [str(missing)]
    missing.symlink_to(FR / "Joe_Biden" / "biden.jpg")
    with facefind.open(db) as ff:
        again = ff.models.use("sface-copy")
    assert (again.embedded, again.faces_with_model, again.errors) == (1, 23, [])

    found = run_json("search", query, "--purpose", "test", db=db)
    assert found["model_id"] == "sface-copy"
    matches = found["faces"][0]["matches"]
    assert matches[0]["path"] == str(query) and matches[0]["similarity"] > 0.99
    assert all("Barack_Obama" in m["path"] for m in matches)
    with facefind.open(db) as ff:
        assert ff.backend.model_id == "sface-copy"
        # persons are groups of faces, not of embeddings: they stay as they were
        assert {p.id: sorted(f.face_id for f in p.faces) for p in ff.people.all()} == people_before
        verdict = ff.verify(query, FR / "Barack_Obama" / "obama2.jpg", purpose="test")
        assert verdict.model_id == "sface-copy" and verdict.same_person

        # switching back re-embeds nothing: the built-in embeddings were kept
        back = ff.models.use(NEW_CATALOGS)  # the recognizer the catalog was made with
        assert (back.embedded, back.faces_with_model, back.previous) == (0, 23, "sface-copy")
        assert ff.search(query, purpose="test").model_id == NEW_CATALOGS
        listed = {m.name: m for m in ff.models.all()}
    assert listed[NEW_CATALOGS].active and not listed["sface-copy"].active
    assert listed["sface-copy"].calibration == "own" and listed["sface-copy"].faces == 23
    assert "* sface-2021dec" in run_cli("models", "list", db=db, check=True).stdout

    # removing it erases its embeddings: no bytes of them stay in any file facefind wrote
    with sqlite3.connect(db) as con:
        blobs = [r[0] for r in con.execute("select embedding from face_embeddings")]
    assert len(blobs) == 23
    with facefind.open(db) as ff:
        assert ff.models.remove("sface-copy").faces == 23
    written = [p for p in db.parent.rglob("*") if p.is_file() and p.suffix not in (".png", ".jpg", ".jpeg")]
    assert not any(b[:64] in f.read_bytes() for b in blobs for f in written)
    with facefind.open(db) as ff:
        assert [m.name for m in ff.models.all()] == list(BUILTINS)
        with pytest.raises(RecognizerError, match="built-in"):
            ff.models.remove(BUILTIN)


def test_erasure_removes_every_models_embeddings(tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "c.db")
    with facefind.open(db) as ff:
        ff.index(FR / "Barack_Obama", workers=1)
        ff.models.add(SFACE, name="sface-copy", sha256=sha(SFACE), color="rgb", mean=0, std=1)
        calibration = json.loads(
            (Path(facefind.__file__).parent / "data" / f"calibration-{BUILTIN}.json").read_text()
        )
        ff.catalog.save_calibration("sface-copy", {**calibration, "model_id": "sface-copy"})
        ff.models.use("sface-copy")
        ff.vector_index()
    with sqlite3.connect(db) as con:
        blobs = [
            r[0]
            for r in con.execute(
                "select embedding from faces join images on images.id = faces.image_id where path like ? "
                "union all select fe.embedding from face_embeddings fe join faces on faces.id = fe.face_id "
                "join images on images.id = faces.image_id where path like ?",
                ("%obama.jpg", "%obama.jpg"),
            )
        ]
    assert len(blobs) == 2  # one face, two models
    run_json("erase", "image", FR / "Barack_Obama" / "obama.jpg", db=db)
    written = [p for p in db.parent.rglob("*") if p.is_file()]
    assert not any(b[i : i + 64] in f.read_bytes() for b in blobs for i in (0, 64) for f in written)


def test_schema_4_catalog_gains_the_recognizer_tables(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    Catalog(db).close()
    with sqlite3.connect(db) as con:
        con.executescript(
            """
            drop table face_embeddings; drop table recognizers;
            update meta set value = '4' where key = 'schema_version';
            """
        )
    with facefind.open(db) as ff:
        assert [m.name for m in ff.models.all()] == list(BUILTINS)
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
        version = con.execute("select value from meta where key = 'schema_version'").fetchone()[0]
    assert {"recognizers", "face_embeddings"} <= tables and version == str(SCHEMA_VERSION)


def test_settings_name_the_recognizer_for_worker_processes(catalog: Path) -> None:
    with facefind.open(catalog) as ff:
        ff.models.add(SFACE, name="sface-copy", sha256=sha(SFACE), color="rgb", mean=0, std=1)
        spec = ff.models.settings_for("sface-copy").recognizer
    assert spec is not None and Settings(recognizer=spec).recognizer == spec
    with facefind.open(catalog) as ff, pytest.raises(RecognizerError, match="no recognizer named 'nope'"):
        ff.models.use("nope")
