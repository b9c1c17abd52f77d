"""The transparency report counts what the audit log and the accountability tables record."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from .conftest import BIDEN, GLINT, OBAMA, run_cli, run_json


def test_report_counts_searches_optouts_erasures_and_consents(fr_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    shutil.copy(fr_db, db)
    stranger = sorted((GLINT / "Keanu_Reeves").iterdir())[0]  # not in the catalog: no match
    run_json("search", OBAMA, "--purpose", "case 1", "--actor", "ann", db=db)
    run_json("search", OBAMA, "--purpose", "case 1", "--actor", "ann", db=db)
    run_json("search", stranger, "--purpose", "case 2", "--actor", "bob", db=db)
    run_json("optout", "add", BIDEN, "--note", "req 9", db=db)
    run_json("erase", "image", OBAMA, db=db)
    kit = next(p for p in run_json("people", "list", db=db) if "Kit_Harington" in p["faces"][0]["path"])
    soon = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    run_json("consent", "add", str(kit["id"]), "--by", "K", "--expires", soon, "--evidence", "e", db=db)
    chart = tmp_path / "chart.png"
    markdown = tmp_path / "report.md"

    report = run_json("report", "--chart", chart, "--output", markdown, db=db)

    searches = report["searches"]
    assert searches["total"] == 3 and searches["with_match"] == 2
    assert searches["by_actor"]["ann"] == {"searches": 2, "with_match": 2, "hit_rate": 1.0}
    assert searches["by_actor"]["bob"]["hit_rate"] == 0.0
    assert searches["by_purpose"] == {"case 1": 2, "case 2": 1}
    assert report["optouts"]["in_force"] == 1 and report["optouts"]["faces_suppressed"] >= 2
    assert report["erasures"] == {
        "total": 1,
        "by_kind": {"image": 1},
        "faces_removed": 1,
        "images_removed": 1,
    }
    assert report["consents"]["expiring_within_30_days"] == [
        {"consent": 1, "person": kit["id"], "expires_on": soon}
    ]
    assert report["audit_intact"] and report["collections"][0]["basis"] == "own"
    text = markdown.read_text()
    assert "| ann | 2 | 2 | 1.0 |" in text and "| case 2 | 1 |" in text and f"ends {soon}" in text
    assert Image.open(chart).size[0] > 500
    assert "# facefind transparency report" in run_cli("report", db=db, check=True).stdout
