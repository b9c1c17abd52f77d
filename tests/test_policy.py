"""Roles and the per-key rate limit of the service."""

from __future__ import annotations

from pathlib import Path

import pytest

import facefind
from facefind.api.app import Service
from facefind.errors import Refused, TooManyRequests
from facefind.policy import ACTIONS, Principal, Role


def test_the_auditor_only_reads_and_nobody_holds_every_right() -> None:
    assert {a for a, roles in ACTIONS.items() if Role.auditor in roles} == {
        "stats",
        "audit",
        "report",
        "collections.read",
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
