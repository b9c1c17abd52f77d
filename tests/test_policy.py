"""Roles and the per-key rate limit of the service."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import facefind
from facefind.accountability.keys import authenticate
from facefind.api.app import Service
from facefind.errors import Refused, TooManyRequests
from facefind.policy import ACTIONS, Principal, Role


def test_the_auditor_only_reads_and_nobody_holds_every_right() -> None:
    assert {a for a, roles in ACTIONS.items() if Role.auditor in roles} == {
        "stats",
        "audit",
        "report",
        "report.dpia",
        "collections.read",
        "review.read",
    }
    for role in Role:
        assert {a for a, roles in ACTIONS.items() if role not in roles}, role
    assert all(roles for roles in ACTIONS.values())


def test_a_key_is_limited_per_minute_and_refused_actions_do_not_count(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        service = Service(ff, requests_per_minute=3)
        ann = Principal("ann", Role.operator)
        with pytest.raises(Refused, match="needs the role auditor"), service.acting(ann, "audit"):
            pass
        for _ in range(3):
            with service.acting(ann, "search") as acting:
                assert acting.actor == "ann" and ff.actor != "ann"
        with (
            pytest.raises(TooManyRequests, match="3 requests in the last minute"),
            service.acting(ann, "search"),
        ):
            pass
        with service.acting(Principal("bob", Role.operator), "search"):
            pass  # another key is not affected


def test_a_schema_7_catalog_gains_key_collections_and_keeps_its_keys(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    with facefind.open(db, actor="t") as ff:
        key = ff.keys_add("ann", "operator").key
    with sqlite3.connect(db) as conn:  # the api_keys table as schema 7 made it
        conn.executescript(
            """
            ALTER TABLE api_keys RENAME TO old;
            CREATE TABLE api_keys (name VARCHAR(200) PRIMARY KEY, key_sha256 VARCHAR(64) NOT NULL UNIQUE,
                role VARCHAR(16) NOT NULL, created_at VARCHAR(32) NOT NULL, created_by VARCHAR(200) NOT NULL,
                revoked_at VARCHAR(32));
            INSERT INTO api_keys SELECT name, key_sha256, role, created_at, created_by, revoked_at FROM old;
            DROP TABLE old;
            UPDATE meta SET value = '7' WHERE key = 'schema_version';
            """
        )
    with facefind.open(db, actor="t") as ff:
        assert authenticate(ff.catalog, key) == Principal("ann", Role.operator)
        assert ff.keys_add("bob", "operator", ["default"] if ff.collections() else None).name == "bob"
