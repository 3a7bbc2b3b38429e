"""Intervals of paired differences: the t interval (corrected where replicates resample one photo pool), the
test-photo variance, p-values and Holm's adjustment, the verdict, and replicates to resolve at 80 % power.

:mod:`geocontrast.results.compare` pairs the replicates of two strategies (and the prior gains) and calls these.
For the n paired differences d_r of one comparison (NaN dropped)::

    mean = mean_r d_r          s2 = var_r d_r (ddof 1)          v_rep = s2 * (1 / n + rho)
    half-width = sqrt((t(n - 1, q) * sqrt(v_rep))**2 + (z(q) * sqrt(v_photo))**2),   q = (1 + confidence) / 2
    interval = mean -/+ half-width

i.e. the t interval over replicates (Student's t with n - 1 degrees of freedom: only n differences measure the
spread), widened in quadrature by the test-photo term with the normal quantile z (it rests on hundreds of photos).
Welch-Satterthwaite degrees of freedom were tried and rejected: with three replicates a low s2 inflates them just
when the interval should be wide (simulated coverage 0.93 where the photo term is small); the quadrature form
covered 0.95 there and 0.98 where the photo term dominates (conservative, never below nominal).

``rho`` is 0 when the replicates are independent draws (each its own world). When they are resampled splits of one
photo pool their training and test sets overlap, the d_r are correlated and s2 / n understates the variance of
the mean: ``rho = n_test / n_train`` is Nadeau and Bengio's corrected resampled t (Machine Learning 52, 2003).

``v_photo`` is the test-set sampling variance that s2 cannot see (0 where s2 already holds it or it is unknown:
:func:`geocontrast.results.compare.test_sampling`). When every replicate scored the same test photos it is the
variance of the paired, species-stratified bootstrap over test photos (the same photos resampled for both
strategies and every replicate, each species keeping its test count), in closed form (:func:`photo_variance`)
rather than by Monte Carlo, so it is exact and needs no seed.

The **p-value** of a comparison is the one the interval implies: 1 minus the confidence at which the interval
would just touch 0 (:func:`p_value`). The comparisons that are not the declared primary one are a family of
exploratory tests; their p-values are adjusted by Holm's step-down method (:func:`holm`), which keeps the chance of
any false "resolved" in the family at most 1 - confidence.

With one difference there is no spread to estimate: no interval, verdict ``unresolved (1 replicate)``. Nor is
there when every difference is the same and no photo term is known (``unresolved (no spread)``): n equal numbers
say nothing of how much another replicate would differ. A difference is *resolved* when its (adjusted) p-value is
below 1 - confidence (for the primary comparison: when its interval excludes 0; :func:`verdict`).

**Replicates to resolve**: for an unresolved comparison with two or more pairs, the smallest number of replicates
m at which a comparison with this true mean and per-replicate spread would be resolved with probability
:data:`POWER` (80 %, the power studies are planned with; :func:`resolve_power`), searched up to
:data:`MAX_REPLICATES`. The photo term (and the resampling correction rho) do not shrink with replicates, so where
they alone reach |mean| no number of replicates will do (:func:`floor_exceeds`). The observed mean of a few
replicates is itself noisy: read m as an order of magnitude for choosing ``pretrain.seeds``, not a promise.
"""

from __future__ import annotations

import numpy as np

MAX_REPLICATES = 100
"""The largest replicate count :func:`replicates_to_resolve` searches."""
POWER = 0.8
"""The probability of resolving a true difference that :func:`replicates_to_resolve` plans for."""


def t_quantile(quantile: float, df: int) -> float:
    """Student's t quantile (scipy imported here: the CLI's --help stays light)."""
    from scipy import stats

    return float(stats.t.ppf(quantile, df))


def normal_quantile(quantile: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(quantile))


def paired_interval(
    differences: np.ndarray, confidence: float = 0.95, photo_variance: float = 0.0, rho: float = 0.0
) -> dict:
    """Mean of paired differences and its t interval (module docstring); NaN differences are dropped.

    Returns n, mean, sd, se, replicate_se (sqrt(s2 (1 / n + rho))), photo_se, df, low, high and p; below two
    differences the spread is unknown and sd, se, df, low, high and p are NaN; with no spread at all (equal
    differences, no photo term) low, high and p are NaN too.
    """
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    n = d.size
    out = {"n": n, "mean": float(d.mean()) if n else np.nan, "photo_se": float(np.sqrt(photo_variance))}
    out.update(sd=np.nan, se=np.nan, replicate_se=np.nan, df=np.nan, low=np.nan, high=np.nan, p=np.nan)
    if n < 2:
        return out
    replicate_var = d.var(ddof=1) * (1 / n + rho)
    total = replicate_var + photo_variance
    out.update(sd=float(d.std(ddof=1)), se=float(np.sqrt(total)), replicate_se=float(np.sqrt(replicate_var)))
    out["df"] = float(n - 1)
    if total <= 0:
        return out
    quantile = (1 + confidence) / 2
    # Each part with its own quantile, added in quadrature: t with n - 1 df for the replicates, the normal one for
    # the photo term (it rests on hundreds of photos). See the module docstring for why not Welch-Satterthwaite.
    half = np.hypot(
        t_quantile(quantile, n - 1) * np.sqrt(replicate_var), normal_quantile(quantile) * np.sqrt(photo_variance)
    )
    out.update(
        low=out["mean"] - half,
        high=out["mean"] + half,
        p=p_value(out["mean"], out["replicate_se"], out["photo_se"], n - 1),
    )
    return out


def p_value(mean: float, replicate_se: float, photo_se: float, df: int) -> float:
    """Two-sided p-value of ``mean`` implied by the interval of :func:`paired_interval`: 1 - the confidence at which
    hypot(t(df, q) * replicate_se, z(q) * photo_se) = |mean| (q = (1 + confidence) / 2). With no photo term this is
    the t test's p; NaN when there is no spread."""
    from scipy import optimize, stats

    if not (replicate_se > 0 or photo_se > 0) or not np.isfinite(mean):
        return np.nan
    if photo_se == 0:
        return float(2 * stats.t.sf(abs(mean) / replicate_se, df))
    if replicate_se == 0:
        return float(2 * stats.norm.sf(abs(mean) / photo_se))

    def gap(tail: float) -> float:  # half-width at the quantile 1 - tail, minus |mean|; falls as the tail grows
        return float(np.hypot(stats.t.isf(tail, df) * replicate_se, stats.norm.isf(tail) * photo_se) - abs(mean))

    if gap(0.5) >= 0:  # mean 0
        return 1.0
    if gap(1e-300) <= 0:
        return 0.0
    return 2 * optimize.brentq(gap, 1e-300, 0.5, xtol=1e-300, rtol=1e-12)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN left out of the family and kept NaN): the i-th
    smallest of m becomes max over j <= i of min(1, (m - j + 1) p_(j))."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    known = np.flatnonzero(~np.isnan(p))
    order = known[np.argsort(p[known], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def resolve_power(mean: float, sd: float, m: int, photo_se: float = 0.0, rho: float = 0.0, confidence=0.95) -> float:
    """The probability that m replicates resolve a comparison whose true mean difference is ``mean`` and whose
    replicates differ by ``sd``: P(|T| > c) for T noncentral t with m - 1 df and noncentrality mean / se_m,
    se_m = sqrt(sd**2 (1 / m + rho) + photo_se**2), and c the interval's half-width over se_m (exact for the t test
    when photo_se is 0; with a photo term the half-width's own randomness is left out)."""
    from scipy import stats

    quantile = (1 + confidence) / 2
    replicate = sd * np.sqrt(1 / m + rho)
    se = np.hypot(replicate, photo_se)
    critical = np.hypot(stats.t.ppf(quantile, m - 1) * replicate, normal_quantile(quantile) * photo_se) / se
    shift = abs(mean) / se
    return float(stats.nct.sf(critical, m - 1, shift) + stats.nct.cdf(-critical, m - 1, shift))


def floor_exceeds(mean: float, sd: float, photo_se: float = 0.0, rho: float = 0.0, confidence=0.95) -> bool:
    """Whether what replicates cannot average away (the photo term, and rho's share of the spread) alone gives a
    half-width of at least |mean|: then no number of replicates resolves the comparison."""
    floor = normal_quantile((1 + confidence) / 2) * np.hypot(sd * np.sqrt(rho), photo_se)
    return bool(floor >= abs(mean))


def replicates_to_resolve(
    mean: float, sd: float, n: int, photo_se: float = 0.0, rho: float = 0.0, confidence: float = 0.95
) -> float:
    """The smallest replicate count m (2 to :data:`MAX_REPLICATES`) at which a comparison with this mean and
    per-replicate ``sd`` (from ``n`` replicates) is resolved with probability :data:`POWER`; NaN when undefined
    (n < 2, no spread, mean 0), inf when :func:`floor_exceeds` or more than :data:`MAX_REPLICATES` are needed."""
    if n < 2 or not np.isfinite(sd) or not mean or not (sd > 0 or photo_se > 0):
        return np.nan
    if floor_exceeds(mean, sd, photo_se, rho, confidence):
        return np.inf
    for m in range(2, MAX_REPLICATES + 1):
        if resolve_power(mean, sd, m, photo_se, rho, confidence) >= POWER:
            return float(m)
    return np.inf


def photo_weights(labels: np.ndarray, weighting: str) -> np.ndarray:
    """(N,) weights of the photos in the metric, summing to 1: micro 1/N; macro 1/(species x its test count)."""
    labels = np.asarray(labels)
    if weighting == "micro":
        return np.full(labels.size, 1.0 / labels.size)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / (counts.size * counts[inverse])


def photo_variance(per_photo: np.ndarray, labels: np.ndarray, weighting: str, clusters=None) -> float:
    """Test-photo sampling variance of the mean paired difference when every replicate scored the same photos.

    ``per_photo``: (n, N) per-replicate, per-photo differences of hits (strategy minus reference, in {-1, 0, 1});
    ``labels``: (N,) species of the photos; ``clusters``: (N,) the observation of each photo (None: each photo its
    own). Photos of one observation (one plant, photographed 2-3 times) are not independent draws, so the bootstrap
    resamples observations within each species, keeping the species' count of observations. With photo weights w
    (:func:`photo_weights`), D_i the mean over replicates of photo i's difference and S_o = sum over observation o's
    photos of w_i D_i, its variance is sum_c m_c var_c(S) (m_c observations of species c, var_c over them, ddof 1;
    a species with one observation adds nothing; with one photo per observation this is the photo bootstrap).
    var_c(S) also holds the replicate x photo noise, whose share s2 / n already counts; it is estimated by the
    two-way residual mean square e2 and taken out: ``v_photo = max(0, sum_c m_c (var_c(S) - mean_c(sum w_i**2)
    e2 / n))``.
    """
    per_photo = np.asarray(per_photo, dtype=float)
    n, n_photos = per_photo.shape
    weights = photo_weights(labels, weighting)
    photo_means = per_photo.mean(axis=0)
    residual = per_photo - photo_means - per_photo.mean(axis=1, keepdims=True) + per_photo.mean()
    noise = (residual**2).sum() / ((n - 1) * (n_photos - 1)) if n > 1 and n_photos > 1 else 0.0
    clusters = np.arange(n_photos) if clusters is None else np.asarray(clusters)
    species_of_photo = np.unique(labels, return_inverse=True)[1].reshape(-1)
    # An observation is one species' (nested in it): a photo's cluster is its (species, observation) pair.
    pairs = np.stack([species_of_photo, np.unique(clusters, return_inverse=True)[1].reshape(-1)], axis=1)
    _, cluster = np.unique(pairs, axis=0, return_inverse=True)
    cluster = cluster.reshape(-1)
    sums = np.bincount(cluster, weights * photo_means)  # S_o
    squares = np.bincount(cluster, weights**2)  # sum of w_i**2 over the observation's photos
    species = np.zeros(sums.size, dtype=np.int64)
    species[cluster] = species_of_photo
    counts = np.bincount(species)  # m_c
    centred = sums - (np.bincount(species, sums) / counts)[species]
    several = counts > 1
    spread = np.bincount(species, centred**2)[several] / (counts[several] - 1)
    per_species = spread - (np.bincount(species, squares) / counts)[several] * noise / n
    return max(0.0, float((counts[several] * per_species).sum()))


def verdict(n: int, low: float, high: float, p_adjusted: float | None = None, confidence: float = 0.95) -> str:
    """``resolved`` or ``unresolved``, or why there is no verdict: ``no pairs``, ``unresolved (1 replicate)``,
    ``unresolved (no spread)``. With ``p_adjusted`` (an exploratory comparison) resolved means p_adjusted below
    1 - confidence; without, that the interval excludes 0."""
    if n == 0:
        return "no pairs"
    if n == 1:
        return "unresolved (1 replicate)"
    if np.isnan(low):
        return "unresolved (no spread)"
    if p_adjusted is not None:
        return "resolved" if p_adjusted < 1 - confidence else "unresolved"
    return "resolved" if low > 0 or high < 0 else "unresolved"
