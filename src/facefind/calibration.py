"""Similarity <-> error rates, from scores of real different-person (impostor) pairs.

FMR(s), the false-match rate of one comparison, is the share of impostor pairs scoring at least s.
Where enough impostor pairs pass (at least `MEASURED_PAIRS`), the table of measured rates is used,
interpolated in log space. Below that, FMR comes from a generalised Pareto model of the impostor
tail (peaks over threshold, the usual extreme-value method), fitted to the highest impostor
scores; its uncertainty comes from refitting on identity-bootstrap resamples of the labelled set.
Such rates are *extrapolated* and always reported as such, with their upper bound. The boundary is
each calibration's own (`measured_floor`: MEASURED_PAIRS / its impostor pairs); the shipped table's
is FMR 4.8e-7 (20.6M pairs of 2,873 people; `provenance` in its JSON, docs/design.md).

A 1:N search compares the query with N faces, so what matters for a stranger is the false
positive identification rate FPIR = P(any of N impostor scores >= s) = 1 - (1 - FMR(s))^N. That
is exact for independent comparisons and an upper bound when, as with faces, the scores of one
stranger against the gallery are positively associated (several photos of a look-alike pass
together): measured on the shared photos the formula overstates FPIR by 1.3-1.6x (docs/benchmarks.md),
on LFW strangers by 1.7-2.5x (docs/design.md, "Calibrated scores").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from importlib import resources

import numpy as np

from .errors import CalibrationError
from .limits import MAX_FMR, MAX_FPIR

DEFAULT_MAX_FMR = 1e-3  # verify (1:1)
# search (1:N): at most 1 in 100 searches for someone who is not in the gallery returns anyone.
DEFAULT_MAX_FPIR = 0.01
# The measured table is trusted down to the FMR at which this many impostor pairs still pass.
MEASURED_PAIRS = 10
# The tail model is fitted to the impostor scores of the top TAIL_SHARE (at least TAIL_MIN of them).
TAIL_SHARE, TAIL_MIN = 3e-3, 200
# Upper bound reported for extrapolated rates: this quantile over the bootstrap refits.
UPPER_QUANTILE = 0.95
# Rates are never reported below this: no calibration set of ours supports a smaller one (and a
# bounded tail model would say 0).
SMALLEST_RATE = 1e-9


@dataclass(frozen=True)
class Tail:
    """Generalised Pareto model of impostor scores above `start`: FMR(s) = rate * GPD(s - start)."""

    start: float  # similarity where the model takes over
    rate: float  # FMR at `start` (share of impostor pairs above it)
    shape: float  # xi; negative: a bounded tail, ending at start - scale / shape
    scale: float

    @staticmethod
    def size(pairs: int, share: float = TAIL_SHARE) -> int:
        """How many of the highest of `pairs` impostor scores the model is fitted to (one more is
        its start)."""
        return int(min(pairs // 2, max(TAIL_MIN, round(share * pairs))))

    @classmethod
    def fit(cls, impostor: np.ndarray, share: float = TAIL_SHARE) -> Tail:
        n = len(impostor)
        k = cls.size(n, share)
        top = np.partition(np.asarray(impostor, np.float64), n - k - 1)[n - k - 1 :]
        return cls.fit_top(top, n, share)

    @classmethod
    def fit_top(cls, top: np.ndarray, pairs: int, share: float = TAIL_SHARE) -> Tail:
        """The model of `pairs` impostor scores from their highest ones only (`top`, any order,
        at least `size(pairs) + 1` of them)."""
        from scipy import stats

        k = cls.size(pairs, share)
        if len(top) < k + 1:
            raise ValueError(f"{len(top)} top scores given; the tail of {pairs} pairs needs {k + 1}")
        top = np.sort(np.asarray(top, np.float64))[-(k + 1) :]
        start, excess = float(top[0]), top[1:] - top[0]
        shape, _, scale = stats.genpareto.fit(excess, floc=0)
        return cls(start=start, rate=k / pairs, shape=float(shape), scale=float(scale))

    def fmr(self, score: float) -> float:
        if score <= self.start:
            return self.rate
        return float(self.rate * _gpd_sf(score - self.start, self.shape, self.scale))

    def threshold(self, fmr: float) -> float:
        if fmr >= self.rate:
            return self.start
        p, xi = fmr / self.rate, self.shape
        excess = -self.scale * math.log(p) if abs(xi) < 1e-9 else self.scale * (p**-xi - 1) / xi
        return float(self.start + excess)


def _gpd_sf(x: float, shape: float, scale: float) -> float:
    """Survival function of the generalised Pareto distribution (scipy's genpareto.sf, without
    its per-call overhead: search evaluates it for every hit and every bootstrap refit)."""
    if abs(shape) < 1e-9:
        return math.exp(-x / scale)
    base = 1 + shape * x / scale
    return 0.0 if base <= 0 else base ** (-1 / shape)


@dataclass(frozen=True)
class Estimate:
    """An error rate at a similarity: `value`, and `upper` its 95% bound where it is extrapolated."""

    value: float
    upper: float
    extrapolated: bool  # below what the impostor pairs measure: from the tail model


@dataclass(frozen=True)
class Calibration:
    model_id: str
    thresholds: list[float]  # ascending
    fmrs: list[float]  # descending, FMR at each threshold
    impostor_pairs: int
    genuine_pairs: int
    source: str
    tail: Tail | None = None  # absent in tables made before facefind 0.2: no extrapolation
    tail_resamples: list[Tail] = field(default_factory=list)  # identity-bootstrap refits
    # What it was measured on: folders, people, photos, pairs, the measured and extrapolated range.
    provenance: dict = field(default_factory=dict)

    @property
    def fmr_floor(self) -> float:
        """The smallest FMR the impostor pairs measure at all (one pair in all of them)."""
        return 1.0 / self.impostor_pairs

    @property
    def measured_floor(self) -> float:
        """Below this FMR the measured table is too thin (under MEASURED_PAIRS pairs) to be used."""
        return MEASURED_PAIRS / self.impostor_pairs if self.tail else self.fmr_floor

    @cached_property
    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.thresholds), np.log10(np.asarray(self.fmrs))

    @cached_property
    def _refits(self) -> np.ndarray:
        """The bootstrap refits as rows of (start, rate, shape, scale), for vectorised use."""
        return np.array([[t.start, t.rate, t.shape, t.scale] for t in self.tail_resamples]).reshape(-1, 4)

    def _table_fmr(self, score: float) -> float:
        t, f = self._table
        if score <= t[0]:
            return float(self.fmrs[0])
        if score >= t[-1]:
            return self.fmr_floor
        return float(10 ** np.interp(score, t, f))

    def _table_threshold(self, fmr: float) -> float:
        t, f = self._table
        # f is descending in t; interpolate t as a function of log FMR.
        return float(np.interp(np.log10(fmr), f[::-1], t[::-1]))

    def _refit_upper(self, score: float) -> float | None:
        """UPPER_QUANTILE of the refits' FMR at `score` (None without refits)."""
        if not len(self._refits):
            return None
        start, rate, shape, scale = self._refits.T
        shape = np.where(np.abs(shape) < 1e-9, 1e-9, shape)  # xi -> 0 is the exponential limit
        base = 1 + shape * np.maximum(score - start, 0) / scale
        fmr = rate * np.where(base > 0, np.maximum(base, 1e-300) ** (-1 / shape), 0.0)
        ranked = np.sort(np.minimum(fmr, self.measured_floor))
        return float(ranked[round(UPPER_QUANTILE * (len(ranked) - 1))])

    def estimate(self, score: float) -> Estimate:
        """FMR of a similarity threshold at `score`, saying whether it is measured or extrapolated."""
        fmr = self._table_fmr(score)
        if fmr > self.measured_floor:
            return Estimate(fmr, fmr, False)
        if self.tail is None:  # an old table: all it can say is "below one pair in all of them"
            return Estimate(self.fmr_floor, self.fmr_floor, False)
        value = float(np.clip(self.tail.fmr(score), SMALLEST_RATE, self.measured_floor))
        upper = self._refit_upper(score)
        return Estimate(value, value if upper is None else max(upper, value), True)

    def fmr(self, score: float) -> float:
        """Estimated false-match rate of a similarity threshold at `score` (one comparison)."""
        return self.estimate(score).value

    def threshold(self, max_fmr: float) -> float:
        """Lowest similarity whose false-match rate is at most `max_fmr`."""
        MAX_FMR.check(max_fmr)
        if max_fmr >= self.measured_floor:
            return self._table_threshold(max_fmr)
        if self.tail is None:
            raise CalibrationError(
                f"FMR {max_fmr:g} is below what this calibration can measure "
                f"({self.impostor_pairs} impostor pairs from {self.source} resolve down to "
                f"{self.fmr_floor:.1e}) and it has no tail model. Run `facefind calibrate` again "
                f"(it now fits one), or give a similarity with --threshold."
            )
        # A cosine similarity cannot pass 1: a rate the model puts beyond it means "no match possible".
        return min(1.0, max(self._table_threshold(self.measured_floor), self.tail.threshold(max_fmr)))

    def threshold_band(self, max_fmr: float) -> tuple[float, float] | None:
        """5% and 95% quantiles of the threshold for `max_fmr` over the bootstrap refits of the tail
        (None where the rate is measured, or no refits exist)."""
        if max_fmr >= self.measured_floor or not self.tail_resamples:
            return None
        refits = [min(1.0, t.threshold(max_fmr)) for t in self.tail_resamples]
        low, high = np.quantile(refits, [1 - UPPER_QUANTILE, UPPER_QUANTILE])
        return float(low), float(high)

    # 1:N ---------------------------------------------------------------------------------
    def fpir(self, score: float, gallery: int) -> Estimate:
        """Share of searches for someone absent from a gallery of `gallery` faces that return a
        face scoring at least `score` (an upper bound: see the module docstring)."""
        e = self.estimate(score)
        return Estimate(fpir_of(e.value, gallery), fpir_of(e.upper, gallery), e.extrapolated)

    def threshold_for_fpir(self, max_fpir: float, gallery: int, *, bound: bool = True) -> float:
        """Lowest similarity that keeps the FPIR at a gallery of `gallery` faces at most `max_fpir`.

        Where that needs an extrapolated FMR, the threshold keeps it at the 95% bound of the tail
        refits (`bound`), not at the point estimate: on synthetic galleries of 10k-1M faces the point
        estimate let through 2-4x the stated FPIR, the bound 0.35-1.85x (bench/openset_bench.py, a
        calibration set of 1,200 people; with 120 people even the bound is unreliable: docs/benchmarks.md).
        On galleries fitted to lfw_dev (a calibration set of its 2,864 people) the bound gave 0.13-1.96x
        at 100k-1M faces, the point estimate 1.3-5.5x; on real people the point estimate was up to 25x
        below the FMR it extrapolated to (docs/benchmarks.md, "Synthetic galleries fitted to lfw_dev")."""
        MAX_FPIR.check(max_fpir)
        key = (max_fpir, gallery, bound)
        if key not in self._cuts:  # the same gallery is searched again and again
            fmr = fmr_for_fpir(max_fpir, max(gallery, 1))
            band = self.threshold_band(fmr) if bound else None
            self._cuts[key] = self.threshold(fmr) if band is None else max(self.threshold(fmr), band[1])
        return self._cuts[key]

    def largest_measured_gallery(self, max_fpir: float) -> int:
        """The largest gallery whose threshold for `max_fpir` is read from the measured table: beyond
        it, FPIR `max_fpir` needs an FMR below `measured_floor`, and the threshold is extrapolated."""
        MAX_FPIR.check(max_fpir)
        return int(math.log1p(-max_fpir) / math.log1p(-self.measured_floor))

    @cached_property
    def _cuts(self) -> dict[tuple[float, int, bool], float]:
        return {}

    # storage -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if fields.get("tail"):
            fields["tail"] = Tail(**fields["tail"])
        fields["tail_resamples"] = [Tail(**t) for t in fields.get("tail_resamples") or []]
        return cls(**fields)

    @classmethod
    def from_scores(
        cls,
        model_id: str,
        impostor: np.ndarray,
        genuine_pairs: int,
        source: str,
        resamples: Iterable[np.ndarray | tuple[np.ndarray, int]] = (),
        provenance: dict | None = None,
    ) -> Calibration:
        """A table from impostor scores; `resamples` are the impostor scores of bootstrap resamples
        of the labelled identities (or, for large sets, each resample's highest scores and its
        number of pairs: see Tail.fit_top), refitted to give the tail model its uncertainty."""
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
        calibration = cls(
            model_id=model_id,
            thresholds=[round(float(x), 6) for x in thresholds],
            fmrs=[float(x) for x in fmrs],
            impostor_pairs=n,
            genuine_pairs=int(genuine_pairs),
            source=source,
            tail=Tail.fit(ascending),
            tail_resamples=[_refit(r) for r in resamples if _pairs(r) >= 1000],
        )
        measured = calibration.measured_floor
        calibration.provenance.update(provenance or {})
        calibration.provenance.update(
            genuine_pairs=int(genuine_pairs),
            impostor_pairs=n,
            smallest_fmr_counted=1 / n,  # one impostor pair in all of them
            # Rates at or above this are read from the measured table; below it, from the tail model
            # (reported as extrapolated, with their 95% bound).
            extrapolated_below_fmr=measured,
            threshold_at_extrapolation=round(calibration._table_threshold(measured), 6),
        )
        return calibration


def _pairs(resample: np.ndarray | tuple[np.ndarray, int]) -> int:
    return resample[1] if isinstance(resample, tuple) else len(resample)


def _refit(resample: np.ndarray | tuple[np.ndarray, int]) -> Tail:
    return Tail.fit_top(*resample) if isinstance(resample, tuple) else Tail.fit(resample)


def fpir_of(fmr: float, gallery: int) -> float:
    """1 - (1 - fmr)^gallery, accurate for tiny rates."""
    if fmr >= 1:
        return 1.0
    return -math.expm1(gallery * math.log1p(-fmr))


def fmr_for_fpir(fpir: float, gallery: int) -> float:
    """The per-comparison FMR at which `gallery` comparisons give this FPIR."""
    return -math.expm1(math.log1p(-fpir) / gallery)


def default_calibration(model_id: str) -> Calibration:
    """The table shipped with facefind for `model_id` (see docs/design.md: how it was made)."""
    name = f"calibration-{model_id}.json"
    try:
        text = resources.files("facefind").joinpath("data", name).read_text()
    except FileNotFoundError:
        raise CalibrationError(
            f"no calibration shipped for model {model_id}; run `facefind calibrate LABELLED_DIR`"
        ) from None
    return Calibration.from_dict(json.loads(text))
