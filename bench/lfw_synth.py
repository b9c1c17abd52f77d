"""Synthetic SFace-like embeddings fitted to real ones (lfw_dev's 2,864 people), for galleries of
100k-1M faces that no shared folder holds.

The model (a two-covariance model, as in PLDA, with a mixture for the identities):
- an identity's centre c is drawn from a mixture of `clusters` Gaussians fitted to the real
  per-person means: k-means groups the means, each group's covariance is the covariance of its
  means less the within-person noise those means still carry (Sigma_w / photos), shrunk towards the
  pooled covariance (`shrink` people's worth) so that small groups stay well-conditioned. The
  groups are what gives the impostor scores their heavy tail: people of one group resemble each
  other more than a single Gaussian would let them (one Gaussian is 0.03 too low at FMR 1e-6);
- a photo is normalise(c + s * w): w ~ N(0, Sigma_w), Sigma_w the covariance of real residuals
  (photo minus its person's mean, people with 2+ photos, n/(n-1) corrected), s a per-photo
  log-normal scale (`photo_spread`: photos differ in quality, which gives the genuine scores
  their low tail).
`score_quantiles` is the check of the fit: impostor similarities at FMR 1e-3..1e-6 and genuine ones
at their 1%/5%/50% quantiles, for real and synthetic sets with the same photos per person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIM = 128
FIT_FMRS = (1e-3, 1e-4, 1e-5, 1e-6)
GENUINE_QUANTILES = (0.01, 0.05, 0.5)


@dataclass
class FittedFaces:
    weights: np.ndarray  # (K,) share of people in each group
    means: np.ndarray  # (K, DIM) group means of identity centres
    factors: np.ndarray  # (K, DIM, DIM) L with L L^T = the group's covariance of centres
    within: np.ndarray  # (DIM, DIM) L with L L^T = Sigma_w
    photo_spread: float
    fitted_on: dict

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        persons: list[str] | np.ndarray,
        clusters: int = 16,
        photo_spread: float = 0.3,
        shrink: float = 50.0,
        seed: int = 0,
    ) -> FittedFaces:
        x = np.asarray(embeddings, np.float64)
        _, owner = np.unique(np.asarray(persons), return_inverse=True)
        counts = np.bincount(owner)
        person_means = np.zeros((len(counts), x.shape[1]))
        np.add.at(person_means, owner, x)
        person_means /= counts[:, None]
        several = counts[owner] >= 2
        residuals = (x - person_means[owner])[several]
        sigma_w = residuals.T @ residuals / (counts[counts >= 2] - 1).sum()
        pooled = np.cov(person_means.T) - sigma_w * np.mean(1 / counts)
        group = _kmeans(person_means, clusters, np.random.default_rng(seed))
        weights, means, factors = [], [], []
        for j in range(clusters):
            mine = group == j
            n = int(mine.sum())
            if n == 0:
                continue
            own = np.cov(person_means[mine].T) if n > 1 else np.zeros_like(pooled)
            own = own - sigma_w * np.mean(1 / counts[mine])
            covariance = (n * own + shrink * pooled) / (n + shrink)
            weights.append(n / len(counts))
            means.append(person_means[mine].mean(0))
            factors.append(_factor(covariance))
        return cls(
            np.asarray(weights),
            np.asarray(means),
            np.asarray(factors),
            _factor(sigma_w),
            photo_spread,
            {"people": len(counts), "photos": len(x), "people_with_2_plus": int((counts >= 2).sum())},
        )

    def people(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` new identity centres."""
        group = rng.choice(len(self.weights), count, p=self.weights / self.weights.sum())
        centres = np.empty((count, self.means.shape[1]))
        for j in range(len(self.weights)):
            mine = group == j
            z = rng.standard_normal((int(mine.sum()), self.means.shape[1]))
            centres[mine] = self.means[j] + z @ self.factors[j].T
        return centres

    def photos(self, centres: np.ndarray, rng: np.random.Generator, block: int = 100_000) -> np.ndarray:
        """One photo of each centre given (repeat a centre for several), unit float32 rows."""
        out = np.empty(centres.shape, np.float32)
        s2 = self.photo_spread**2
        for start in range(0, len(centres), block):
            c = centres[start : start + block]
            scale = np.exp(self.photo_spread * rng.standard_normal((len(c), 1)) - s2)  # E[scale^2] = 1
            x = c + scale * (rng.standard_normal(c.shape) @ self.within.T)
            out[start : start + block] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    def labelled(self, counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A labelled set: counts[i] photos of new person i; (embeddings, person number per row)."""
        owner = np.repeat(np.arange(len(counts)), counts)
        return self.photos(self.people(len(counts), rng)[owner], rng), owner


def score_quantiles(embeddings: np.ndarray, owner: np.ndarray) -> dict:
    """Impostor similarity at each FMR in FIT_FMRS (the one the given share of different-person pairs
    reaches) and genuine similarity at GENUINE_QUANTILES, over all pairs of a set."""
    e = np.asarray(embeddings, np.float32)
    owner = np.asarray(owner)
    impostor, genuine = [], []
    for start in range(0, len(e), 2000):  # row blocks: a 6k set has 20M pairs
        rows = np.arange(start, min(start + 2000, len(e)))
        sims = e[rows] @ e.T
        upper = np.arange(len(e))[None, :] > rows[:, None]
        same = owner[rows][:, None] == owner[None, :]
        impostor.append(sims[upper & ~same])
        genuine.append(sims[upper & same])
    imp, gen = np.concatenate(impostor), np.concatenate(genuine)
    out: dict = {"impostor_pairs": len(imp), "genuine_pairs": len(gen), "impostor_at_fmr": {}}
    for fmr in FIT_FMRS:
        k = round(fmr * len(imp))
        if k >= 1:
            out["impostor_at_fmr"][f"{fmr:g}"] = round(float(-np.partition(-imp, k - 1)[k - 1]), 4)
    out["genuine_at_quantile"] = {f"{q:g}": round(float(np.quantile(gen, q)), 4) for q in GENUINE_QUANTILES}
    return out


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 30) -> np.ndarray:
    centres = x[rng.choice(len(x), k, replace=False)]
    group = np.zeros(len(x), np.int64)
    for _ in range(iterations):
        group = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.array([x[group == j].mean(0) if (group == j).any() else centres[j] for j in range(k)])
    return group


def _factor(covariance: np.ndarray) -> np.ndarray:
    """A square root of a covariance, its negative eigenvalues (noise of the estimate) cut to ~0."""
    w, v = np.linalg.eigh((covariance + covariance.T) / 2)
    return v * np.sqrt(np.maximum(w, 1e-8))
