"""Metrics against hand-computed answers, and the full report on real labelled photos."""

from __future__ import annotations

import numpy as np
import pytest

from facefind import evaluate as ev


def test_tar_at_far_counts_impostors_strictly() -> None:
    impostor = np.arange(1000) / 1000  # 0.000 .. 0.999
    genuine = np.array([0.5, 0.9985, 0.9995, 1.0])
    tar, threshold = ev.tar_at_far(genuine, impostor, 1e-3)
    assert threshold is not None and (impostor >= threshold).mean() <= 1e-3
    assert tar == 0.75  # 0.9985, 0.9995 and 1.0 pass; only impostor 0.999 may pass
    assert ev.tar_at_far(genuine, impostor, 1e-4) == (None, None)


def test_equal_error_rate() -> None:
    assert ev.equal_error_rate(np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.3])) == 0
    # genuine uniform on [0.1, 1.1], impostor on [0, 1]: FRR = t - 0.1 = FAR = 1 - t at t = 0.55
    eer = ev.equal_error_rate(np.linspace(0, 1, 1001) + 0.1, np.linspace(0, 1, 1001))
    assert eer == pytest.approx(0.45, abs=0.005)


def test_glint_report(glint_set) -> None:  # type: ignore[no-untyped-def]
    report = ev.report(glint_set)
    assert report["images"] == 1166 and report["identities"] == 12
    assert report["failures_to_detect"] == 0
    v, ident = report["verification"], report["identification"]
    assert v["genuine_pairs"] + v["impostor_pairs"] == 1166 * 1165 // 2
    # floors below what was measured (0.892, 0.823, rank-1 1.0) to catch regressions
    assert v["tar_at_far_0.001"] >= 0.85 and v["tar_at_far_0.0001"] >= 0.78
    assert ident["rank1"] >= 0.97 and ident["fnir_at_fpir"] <= 0.1
    assert ident["fpir_achieved"] <= 0.003
