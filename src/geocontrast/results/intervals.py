"""Intervals of paired differences: the t interval, the test-photo variance, the verdict, replicates to resolve.

:mod:`geocontrast.results.compare` pairs the replicates of two strategies (and the prior gains) and calls these.
For the n paired differences d_r of one comparison (NaN dropped)::

    mean = mean_r d_r          s2 = var_r d_r (ddof 1)          se = sqrt(s2 / n + v_photo)
    half-width = sqrt((t(n - 1, q) * sqrt(s2 / n))**2 + (z(q) * sqrt(v_photo))**2),   q = (1 + confidence) / 2
    interval = mean -/+ half-width

i.e. the t interval over replicates (Student's t with n - 1 degrees of freedom: only n differences measure the
spread), widened in quadrature by the test-photo term with the normal quantile z (it rests on hundreds of photos).
Welch-Satterthwaite degrees of freedom were tried and rejected: with three replicates a low s2 inflates them just
when the interval should be wide (simulated coverage 0.93 where the photo term is small); the quadrature form
covered 0.95 there and 0.98 where the photo term dominates (conservative, never below nominal).

``v_photo`` is the test-set sampling variance that s2 cannot see (0 where s2 already holds it or it is unknown:
:func:`geocontrast.results.compare.test_sampling`). When every replicate scored the same test photos it is the
variance of the paired, species-stratified bootstrap over test photos (the same photos resampled for both
strategies and every replicate, each species keeping its test count), in closed form (:func:`photo_variance`)
rather than by Monte Carlo, so it is exact and needs no seed.

With one difference there is no spread to estimate: no interval, verdict ``unresolved (1 replicate)``. A
difference is *resolved* when its interval excludes 0 (:func:`verdict`).

**Replicates to resolve** (a planning aid, not a power analysis): for an unresolved comparison with two or more
pairs, the smallest number of replicates m at which the same mean and the same per-replicate spread would give an
interval excluding 0, i.e. hypot(t(m - 1, q) * sd / sqrt(m), z(q) * photo_se) < |mean|, searched up to
:data:`MAX_REPLICATES`. The photo term does not shrink with replicates, so where it alone reaches |mean| no number
of replicates will do (NaN). The observed mean of a few replicates is itself noisy: read m as an order of
magnitude for choosing ``pretrain.seeds``, not a promise.
"""

from __future__ import annotations

import numpy as np

MAX_REPLICATES = 100
"""The largest replicate count :func:`replicates_to_resolve` searches."""


def t_quantile(quantile: float, df: int) -> float:
    """Student's t quantile (scipy imported here: the CLI's --help stays light)."""
    from scipy import stats

    return float(stats.t.ppf(quantile, df))


def normal_quantile(quantile: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(quantile))


def paired_interval(differences: np.ndarray, confidence: float = 0.95, photo_variance: float = 0.0) -> dict:
    """Mean of paired differences and its t interval (module docstring); NaN differences are dropped.

    Returns n, mean, se, replicate_se, photo_se, df, low and high; below two differences the spread is unknown
    and se, df, low and high are NaN.
    """
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    n = d.size
    out = {"n": n, "mean": float(d.mean()) if n else np.nan, "photo_se": float(np.sqrt(photo_variance))}
    out.update(se=np.nan, replicate_se=np.nan, df=np.nan, low=np.nan, high=np.nan)
    if n < 2:
        return out
    replicate_var = d.var(ddof=1) / n
    total = replicate_var + photo_variance
    quantile = (1 + confidence) / 2
    # Each part with its own quantile, added in quadrature: t with n - 1 df for the replicates, the normal one for
    # the photo term (it rests on hundreds of photos). See the module docstring for why not Welch-Satterthwaite.
    half = np.hypot(
        t_quantile(quantile, n - 1) * np.sqrt(replicate_var), normal_quantile(quantile) * np.sqrt(photo_variance)
    )
    out.update(
        se=float(np.sqrt(total)),
        replicate_se=float(np.sqrt(replicate_var)),
        df=float(n - 1),
        low=out["mean"] - half,
        high=out["mean"] + half,
    )
    return out


def replicates_to_resolve(
    mean: float, replicate_se: float, n: int, photo_se: float = 0.0, confidence: float = 0.95
) -> float:
    """The smallest replicate count whose interval would exclude 0 at this mean and spread (module docstring).

    ``replicate_se`` is sqrt(s2 / n) from ``n`` replicates; NaN when undefined (n < 2, mean 0) or when more than
    :data:`MAX_REPLICATES` would be needed.
    """
    if n < 2 or not np.isfinite(replicate_se) or not mean:
        return np.nan
    from scipy import stats

    quantile = (1 + confidence) / 2
    m = np.arange(2, MAX_REPLICATES + 1)
    sd = replicate_se * np.sqrt(n)
    half = np.hypot(stats.t.ppf(quantile, m - 1) * sd / np.sqrt(m), normal_quantile(quantile) * photo_se)
    enough = np.flatnonzero(half < abs(mean))
    return float(m[enough[0]]) if enough.size else np.nan


def photo_weights(labels: np.ndarray, weighting: str) -> np.ndarray:
    """(N,) weights of the photos in the metric, summing to 1: micro 1/N; macro 1/(species x its test count)."""
    labels = np.asarray(labels)
    if weighting == "micro":
        return np.full(labels.size, 1.0 / labels.size)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / (counts.size * counts[inverse])


def photo_variance(per_photo: np.ndarray, labels: np.ndarray, weighting: str) -> float:
    """Test-photo sampling variance of the mean paired difference when every replicate scored the same photos.

    ``per_photo``: (n, N) per-replicate, per-photo differences of hits (strategy minus reference, in {-1, 0, 1});
    ``labels``: (N,) species of the photos. With photo weights w (:func:`photo_weights`, equal within a species)
    and D_i = mean over replicates of photo i's difference, the species-stratified bootstrap over photos has
    variance sum_c n_c w_c**2 var_c(D) (var_c over the photos of species c, ddof 1; a species with one test photo
    adds nothing). var_c(D) also holds the replicate x photo noise, whose share s2 / n already counts; it is
    estimated by the two-way residual mean square e2 and taken out:
    ``v_photo = max(0, sum_c n_c w_c**2 (var_c(D) - e2 / n))``.
    """
    per_photo = np.asarray(per_photo, dtype=float)
    n, n_photos = per_photo.shape
    weights = photo_weights(labels, weighting)
    photo_means = per_photo.mean(axis=0)
    residual = per_photo - photo_means - per_photo.mean(axis=1, keepdims=True) + per_photo.mean()
    noise = (residual**2).sum() / ((n - 1) * (n_photos - 1)) if n > 1 and n_photos > 1 else 0.0
    _, species, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.bincount(species, photo_means)
    squares = np.bincount(species, (photo_means - (sums / counts)[species]) ** 2)
    several = counts > 1
    spread = squares[several] / (counts[several] - 1)
    weight = np.bincount(species, weights)[several] / counts[several]  # equal within a species
    total = (counts[several] * weight**2 * (spread - noise / n)).sum()
    return max(0.0, float(total))


def verdict(n: int, low: float, high: float) -> str:
    if n == 0:
        return "no pairs"
    if n == 1:
        return "unresolved (1 replicate)"
    return "resolved" if low > 0 or high < 0 else "unresolved"
