"""The CLI end to end, through a subprocess: --json output, exit codes, messages.

Tests taking `backend_db` run twice: on an SQLite file and on a PostgreSQL database."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from .conftest import BIDEN, FR, MULTI, OBAMA, new_catalog, run_cli, run_json


def test_index_search_verify_stats(backend_db: str | Path) -> None:
    db = new_catalog(backend_db)
    report = run_json("index", FR, db=db)
    assert report["indexed"] == 23 and report["faces_found"] == 23 and report["errors"] == 0
    assert set(report["stage_ms_per_image"]) >= {"decode", "detect", "align", "embed", "store"}

    result = run_json("search", MULTI / "obama_and_biden.jpg", "--top-k", "5", "--purpose", "test", db=db)
    assert result["rule"] == "fpir" and result["max_fpir"] == 0.01 and len(result["faces"]) >= 2
    assert result["faces_searched"] == 23
    hits = [m for f in result["faces"] for m in f["matches"]]
    assert hits and all(0 <= m["fpir"] <= m["fpir_upper"] <= 0.01 for m in hits)
    tops = {Path(f["matches"][0]["path"]).parent.name for f in result["faces"] if f["matches"]}
    assert {"Barack_Obama", "Joe_Biden"} <= tops

    verdict = run_json("verify", OBAMA, BIDEN, db=db)
    assert verdict["same_person"] is False

    stats = run_json("stats", db=db)
    assert stats["images"] == 23 and stats["faces"] == 23 and stats["collections"] == {"default": 23}

    human = run_cli("search", OBAMA, "--purpose", "test", db=db, check=True)
    assert "similarity" in human.stdout and "obama" in human.stdout


def test_db_from_environment(tmp_path: Path) -> None:
    import os

    env = dict(os.environ, FACEFIND_DB=str(new_catalog(tmp_path / "env.db")))
    run_cli("index", FR / "Joe_Biden", env=env, check=True)
    assert (tmp_path / "env.db").exists()


def test_errors_exit_nonzero_with_a_message(tmp_path: Path, backend_db: str | Path) -> None:
    db = new_catalog(backend_db)
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(OBAMA, album / "obama.jpg")
    (album / "broken.jpg").write_bytes(b"")
    indexed = run_cli("index", album, db=db)
    assert indexed.returncode == 3
    assert "completed with 1 error" in indexed.stdout and "empty file" in indexed.stdout

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), "grey").save(blank)
    no_face = run_cli("search", blank, "--purpose", "test", db=db)
    assert no_face.returncode == 1 and "no face found" in no_face.stderr and no_face.stdout == ""

    missing = run_cli("verify", tmp_path / "nope.jpg", OBAMA, db=db)
    assert missing.returncode == 1 and "no such file" in missing.stderr

    bad_db = run_cli("stats", db=tmp_path)
    assert bad_db.returncode == 1 and "is a folder" in bad_db.stderr


def test_an_unreachable_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://ann:s3cret@/facefind?host={tmp_path}"  # no server listens there
    failed = run_cli("stats", db=url)
    assert failed.returncode == 1 and "cannot reach the PostgreSQL catalog" in failed.stderr
    assert "s3cret" not in failed.stderr and "ann:***@" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_evaluate_with_groups_and_plot(tmp_path: Path) -> None:
    labelled = tmp_path / "labelled"
    for person in ("Barack_Obama", "Joe_Biden", "Kit_Harington", "Rose_Leslie", "Alex_Lacamoire"):
        shutil.copytree(FR / person, labelled / person)
    blank = labelled / "Joe_Biden" / "no_face.png"
    Image.new("RGB", (200, 200), "white").save(blank)
    (labelled / "groups.csv").write_text(
        "person,group\nBarack_Obama,A\nJoe_Biden,A\nKit_Harington,B\nRose_Leslie,B\nAlex_Lacamoire,B\n"
    )
    plot = tmp_path / "det.png"
    result = run_json("evaluate", labelled, "--plot", plot, db=tmp_path / "c.db")
    assert result["images"] == 23 and result["identities"] == 5
    assert result["failures_to_detect"] == 1 and result["failed_files"] == [str(blank)]
    v = result["verification"]
    # the blank photo's two genuine pairs with Biden's photos count as false non-matches
    assert v["genuine_pairs"] == 66 + 3 + 3 + 1 + 3
    assert v["impostor_pairs"] == 253 - 76
    assert v["tar_at_far_0.001"] is None  # 177 impostor pairs cannot measure FAR 1e-3
    assert 0 <= v["eer"] < 0.2
    groups = result["per_group"]["groups"]
    assert set(groups) == {"A", "B"} and groups["A"]["identities"] == 2
    assert groups["A"]["fnmr"] > 0  # the no-face photo is an error, not dropped
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_calibrate_on_own_photos_replaces_the_shipped_table(tmp_path: Path, backend_db: str | Path) -> None:
    from .conftest import DATASETS

    db = backend_db
    shipped = run_json("verify", OBAMA, BIDEN, db=db)["threshold"]
    table_file = tmp_path / "table.json"
    table = run_json("calibrate", DATASETS / "deepface", "--output", table_file, db=db)
    assert table["impostor_pairs"] > 1000 and "deepface" in table["source"]
    assert table_file.exists()
    mine = run_json("verify", OBAMA, BIDEN, db=db)["threshold"]
    assert mine != shipped  # the user's own table is used from now on
    too_few = run_cli("calibrate", FR / "Joe_Biden", db=db)
    assert too_few.returncode == 1 and "at least two person folders" in too_few.stderr


def test_search_an_empty_catalog_says_what_to_do(backend_db: str | Path) -> None:
    empty = run_cli("search", OBAMA, "--purpose", "test", db=backend_db)
    assert empty.returncode == 0 and "no match" in empty.stdout
    assert "run `facefind index PHOTOS` first" in empty.stderr
    notes = run_cli("index", FR / "SOURCE.txt", db=new_catalog(backend_db))
    assert notes.returncode == 1 and "not a photo" in notes.stderr


def test_read_only_catalog_is_a_clear_error(tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "c.db")
    run_cli("index", FR / "Joe_Biden", db=db, check=True)
    before = run_json("stats", db=db)
    ro = tmp_path / "ro.db"
    ro.write_bytes(db.read_bytes())
    ro.chmod(0o444)
    import os

    if os.geteuid() == 0:  # root ignores file modes; use SQLite's own read-only switch instead
        uri = f"sqlite:///file:{ro}?mode=ro&uri=true"
        failed = run_cli("index", FR / "Rose_Leslie", "--db", uri)
    else:
        failed = run_cli("index", FR / "Rose_Leslie", db=ro)
    assert failed.returncode == 1 and "could not be written" in failed.stderr
    assert run_json("stats", db=db) == before


def test_index_info_and_reindex(backend_db: str | Path) -> None:
    from .conftest import GLINT

    db = new_catalog(backend_db)
    indexed = sum(run_json("index", GLINT / p, db=db)["faces_found"] for p in ("Tina_Fey", "Hugh_Laurie"))
    info = run_json("index-info", db=db)
    assert info["kind"] == "flat" and info["faces"] == indexed >= 200
    assert info["recall_at_10_estimate"] == 1.0
    assert info["bytes_per_face"] > 512  # 128 float32 plus the per-face bookkeeping
    query = GLINT / "Tina_Fey" / sorted(p.name for p in (GLINT / "Tina_Fey").iterdir())[0]
    before = run_json("search", query, "--purpose", "test", db=db)["faces"][0]["matches"]

    forced = run_json("reindex", "--kind", "hnsw", db=db)
    assert forced["kind"] == "hnsw" and forced["policy"] == "hnsw" and forced["faces"] == indexed
    assert forced["bytes_per_face"] < 700  # 128 B of 8-bit vector + ~400 B of graph links
    after = run_json("search", query, "--purpose", "test", db=db)["faces"][0]["matches"]
    assert len(after) == len(before) >= 5
    assert [m["face_id"] for m in after][:5] == [m["face_id"] for m in before][:5]
    assert run_json("index-info", db=db)["kind"] == "hnsw"  # the choice is kept

    assert run_json("reindex", "--kind", "auto", db=db)["kind"] == "flat"
    bad = run_cli("reindex", "--kind", "annoy", db=db)
    assert bad.returncode == 1 and "--kind must be auto or one of" in bad.stderr
