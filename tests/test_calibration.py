"""The shipped similarity->FMR table holds on real impostor pairs and behaves as a table should."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from facefind.calibration import SMALLEST_RATE, Calibration, default_calibration
from facefind.errors import CalibrationError, InvalidValue
from facefind.faces.opencv import MODEL_ID


def test_default_threshold_gives_the_stated_fmr_on_glint(glint_set) -> None:  # type: ignore[no-untyped-def]
    calibration = default_calibration(MODEL_ID)
    threshold = calibration.threshold(1e-3)
    _, impostor = glint_set.pair_scores()
    measured = float((impostor >= threshold).mean())
    assert 0.5e-3 <= measured <= 2e-3, measured


def test_fmr_and_threshold_are_inverse_and_monotonic() -> None:
    c = default_calibration(MODEL_ID)
    for fmr in (1e-2, 1e-3, 1e-4, 1e-5):
        assert c.fmr(c.threshold(fmr)) == pytest.approx(fmr, rel=0.05)
    scores = np.linspace(-1, 1, 201)
    fmrs = [c.fmr(s) for s in scores]
    assert all(a >= b for a, b in pairwise(fmrs))
    assert c.fmr(1.0) == SMALLEST_RATE  # never claimed lower, whatever the tail model says


def test_from_scores_counts_exactly() -> None:
    rng = np.random.default_rng(0)
    impostor = rng.normal(0, 0.1, 100_000)
    c = Calibration.from_scores("m", impostor, 10, "synthetic")
    for fmr in (1e-1, 1e-2, 1e-3):
        t = c.threshold(fmr)
        assert (impostor >= t).mean() == pytest.approx(fmr, rel=0.1)


def test_refuses_what_it_cannot_measure() -> None:
    c = default_calibration(MODEL_ID)
    old_style = Calibration.from_dict({**c.to_dict(), "tail": None, "tail_resamples": []})
    with pytest.raises(CalibrationError, match="below what this calibration can measure"):
        old_style.threshold(1e-9)
    assert old_style.estimate(0.9).value == c.fmr_floor  # only "below one pair in all of them"
    with pytest.raises(InvalidValue, match="max_fmr"):
        c.threshold(0)
    with pytest.raises(CalibrationError, match="at least 1000"):
        Calibration.from_scores("m", np.zeros(10), 1, "tiny")


def test_shipped_table_rests_on_thousands_of_people_and_extrapolates_only_below_them() -> None:
    c = default_calibration(MODEL_ID)
    p = c.provenance
    assert [f["folder"] for f in p["folders"]] == ["lfw_dev", "glint_dev12"] and p["people"] == 2873
    assert p["impostor_pairs"] == c.impostor_pairs > 20_000_000 and p["genuine_pairs"] == c.genuine_pairs
    assert p["smallest_fmr_counted"] == pytest.approx(1 / c.impostor_pairs)
    assert (
        p["extrapolated_below_fmr"] == pytest.approx(c.measured_floor) == pytest.approx(10 / c.impostor_pairs)
    )
    # Measured down to its own boundary, extrapolated (and said so) only below it.
    assert not c.estimate(c.threshold(c.measured_floor * 1.5)).extrapolated
    assert c.estimate(c.threshold(c.measured_floor / 3)).extrapolated
    # Search's default (FPIR 0.01): measured up to ~20,000 faces, extrapolated at 100k.
    assert not c.estimate(c.threshold_for_fpir(0.01, 20_000)).extrapolated
    assert c.estimate(c.threshold_for_fpir(0.01, 100_000)).extrapolated
    assert default_calibration(MODEL_ID + "-flip").provenance["people"] == 2873
