"""Similarity <-> false-match rate, from scores of real different-person (impostor) pairs.

FMR(s) is the share of impostor pairs scoring at least s. The table keeps thresholds at
log-spaced FMRs; between them FMR is interpolated in log space. Above the highest impostor
score the FMR is only known to be below 1 / number of impostor pairs, and is reported as that
bound (`fmr_floor`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np

from .errors import CalibrationError


@dataclass(frozen=True)
class Calibration:
    model_id: str
    thresholds: list[float]  # ascending
    fmrs: list[float]  # descending, FMR at each threshold
    impostor_pairs: int
    genuine_pairs: int
    source: str

    @property
    def fmr_floor(self) -> float:
        return 1.0 / self.impostor_pairs

    def fmr(self, score: float) -> float:
        """Estimated false-match rate of a similarity threshold at `score`."""
        t, f = np.asarray(self.thresholds), np.log10(np.asarray(self.fmrs))
        if score <= t[0]:
            return float(self.fmrs[0])
        if score >= t[-1]:
            return self.fmr_floor
        return float(10 ** np.interp(score, t, f))

    def threshold(self, max_fmr: float) -> float:
        """Lowest similarity whose false-match rate is at most `max_fmr`."""
        if not 0 < max_fmr <= 1:
            raise CalibrationError(f"--max-fmr must be in (0, 1], got {max_fmr}")
        if max_fmr < self.fmr_floor:
            raise CalibrationError(
                f"FMR {max_fmr:g} is below what this calibration can measure "
                f"({self.impostor_pairs} impostor pairs from {self.source} resolve down to "
                f"{self.fmr_floor:.1e}). Run `facefind calibrate` on a larger labelled set, "
                f"or give a similarity with --threshold."
            )
        t, f = np.asarray(self.thresholds), np.log10(np.asarray(self.fmrs))
        # f is descending in t; interpolate t as a function of log FMR.
        return float(np.interp(np.log10(max_fmr), f[::-1], t[::-1]))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    @classmethod
    def from_scores(cls, model_id: str, impostor: np.ndarray, genuine_pairs: int, source: str) -> Calibration:
        ascending = np.sort(np.asarray(impostor, np.float64))
        n = len(ascending)
        if n < 1000:
            raise CalibrationError(
                f"only {n} different-person pairs in {source}; calibration needs at least "
                f"1000 (e.g. 50 photos of 5+ people). Add more labelled photos."
            )
        # Thresholds at which 1 .. n impostors pass, log-spaced; FMR counted exactly (ties too).
        passing = np.unique(np.round(np.logspace(0, np.log10(n), 200)).astype(int))
        thresholds = np.unique(ascending[n - passing])
        fmrs = (n - np.searchsorted(ascending, thresholds, side="left")) / n
        return cls(
            model_id=model_id,
            thresholds=[round(float(x), 6) for x in thresholds],
            fmrs=[float(x) for x in fmrs],
            impostor_pairs=n,
            genuine_pairs=int(genuine_pairs),
            source=source,
        )


def default_calibration(model_id: str) -> Calibration:
    """The table shipped with facefind for `model_id` (see README: how it was made)."""
    name = f"calibration-{model_id}.json"
    try:
        text = resources.files("facefind").joinpath("data", name).read_text()
    except FileNotFoundError:
        raise CalibrationError(
            f"no calibration shipped for model {model_id}; run `facefind calibrate LABELLED_DIR`"
        ) from None
    return Calibration.from_dict(json.loads(text))
