"""Paired comparisons (geocontrast.results.compare) and their intervals (geocontrast.results.intervals), per-photo
hit records and the forest plot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from geocontrast.metrics import hit_record, hits_in_ranked, ranked_classes, read_hits
from geocontrast.results import compare as cmp
from geocontrast.results import compare_text as text
from geocontrast.results import intervals


def results_frame(values: dict[str, list[float]], protocol="linear", label_fraction=10.0) -> pd.DataFrame:
    """results.csv rows: one per (strategy, seed) with top1 = the listed value (NaN allowed), top5 = top1 + 0.1."""
    rows = [
        {
            "strategy": s,
            "protocol": protocol,
            "label_fraction": label_fraction,
            "seed": seed,
            "top1": v,
            "top5": v + 0.1,
        }
        for s, vs in values.items()
        for seed, v in enumerate(vs)
        if v is not None
    ]
    frame = pd.DataFrame(rows)
    frame["macro_top1"] = frame["top1"]
    return frame


# ---------------------------------------------------------------------------------------------- the t interval
def test_paired_interval_hand_computed():
    # d = 0.02, 0.04, 0.09: mean 0.05; deviations -0.03, -0.01, 0.04, squares sum 0.0026, s2 = 0.0026 / 2 = 0.0013;
    # se = sqrt(0.0013 / 3) = 0.0208167; t(2 df, 0.975) = 4.302653; half-width = 0.0895675.
    interval = intervals.paired_interval(np.array([0.02, 0.04, 0.09]), 0.95)
    assert interval["n"] == 3 and interval["df"] == 2
    assert interval["mean"] == pytest.approx(0.05)
    assert interval["se"] == pytest.approx(0.0208167, abs=1e-7)
    assert interval["low"] == pytest.approx(0.05 - 0.0895675, abs=1e-6)
    assert interval["high"] == pytest.approx(0.05 + 0.0895675, abs=1e-6)


def test_photo_term_widens_in_quadrature():
    # replicate part t(2) * 0.0208167 = 0.0895675; photo part z(0.975) * 0.03 = 1.959964 * 0.03 = 0.0587989;
    # half-width sqrt(0.0895675**2 + 0.0587989**2) = 0.1071418.
    interval = intervals.paired_interval(np.array([0.02, 0.04, 0.09]), 0.95, photo_variance=0.03**2)
    assert interval["high"] - interval["mean"] == pytest.approx(0.1071418, abs=1e-6)
    assert interval["se"] == pytest.approx(np.sqrt(0.0013 / 3 + 0.0009))


def test_paired_interval_one_or_no_replicate_and_nan():
    one = intervals.paired_interval(np.array([0.03, np.nan]))
    assert one["n"] == 1 and one["mean"] == pytest.approx(0.03) and np.isnan(one["low"]) and np.isnan(one["high"])
    assert intervals.paired_interval(np.array([np.nan]))["n"] == 0
    assert intervals.verdict(0, np.nan, np.nan) == "no pairs"
    assert intervals.verdict(1, np.nan, np.nan) == "unresolved (1 replicate)"
    assert intervals.verdict(3, 0.001, 0.2) == "resolved"
    assert intervals.verdict(3, -0.2, -0.001) == "resolved"
    assert intervals.verdict(3, -0.01, 0.2) == "unresolved"


def test_t_interval_coverage_with_redrawn_test_sets():
    """2000 simulated experiments, 3 replicates, each drawing its own 200 test photos and both strategies' hits.

    The true difference is the population's: strategy B hits a photo with probability p + 0.04 where A has p.
    """
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2000):
        p = rng.uniform(0.2, 0.8, (3, 200))
        init = rng.normal(0, 0.02, (3, 1))  # B's initialisation luck, per replicate
        differences = (rng.random(p.shape) < p + 0.04 + init).mean(1) - (rng.random(p.shape) < p).mean(1)
        interval = intervals.paired_interval(differences, 0.95)
        covered += interval["low"] <= 0.04 <= interval["high"]
    assert 0.93 <= covered / 2000 <= 0.97


def shared_split_experiment(rng, labels, n=3):
    """Per-photo hit differences (n, N) on one shared test set; the strategy's gain is photo-specific:
    +0.40 on half the photos (population share), -0.30 on the rest, so the true mean difference is 0.05.
    Hit probabilities stay within [0.05, 1]."""
    p = rng.uniform(0.35, 0.5, labels.size) + 0.02 * labels
    gain = np.where(rng.random(labels.size) < 0.5, 0.40, -0.30)
    init = rng.normal(0, 0.01, (n, 1))
    return (rng.random((n, labels.size)) < p + gain + init).astype(int) - (rng.random((n, labels.size)) < p)


def test_photo_bootstrap_restores_coverage_on_a_shared_test_split():
    """With one shared test split the replicate spread misses the photos' sampling error: the t interval alone
    under-covers; with the photo term it covers at least nominally (it is conservative where photos dominate)."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 50)
    with_photos = without = 0
    for _ in range(1000):
        per_photo = shared_split_experiment(rng, labels)
        differences = per_photo.mean(1)
        plain = intervals.paired_interval(differences, 0.95)
        full = intervals.paired_interval(differences, 0.95, intervals.photo_variance(per_photo, labels, "micro"))
        without += plain["low"] <= 0.05 <= plain["high"]
        with_photos += full["low"] <= 0.05 <= full["high"]
    assert without / 1000 < 0.92
    assert 0.94 <= with_photos / 1000 <= 0.995


def test_the_observation_bootstrap_covers_where_photos_of_one_plant_share_their_fate():
    """Photos come in observations of 3 (one plant photographed three times) that share the strategy's gain: the
    photo bootstrap treats them as independent and under-covers; resampling observations covers nominally."""
    rng = np.random.default_rng(2)
    observations = np.repeat(np.arange(80), 3)  # 80 observations of 3 photos
    labels = observations // 20  # 4 species of 20 observations each
    by_photo = by_observation = 0
    for _ in range(1000):
        p = rng.uniform(0.35, 0.5, observations.size) + 0.02 * labels
        gain = np.where(rng.random(80) < 0.5, 0.40, -0.30)[observations]  # true mean difference 0.05
        init = rng.normal(0, 0.01, (3, 1))
        per_photo = (rng.random((3, labels.size)) < p + gain + init).astype(int) - (rng.random((3, labels.size)) < p)
        differences = per_photo.mean(1)
        photos = intervals.paired_interval(differences, 0.95, intervals.photo_variance(per_photo, labels, "micro"))
        clustered = intervals.photo_variance(per_photo, labels, "micro", clusters=observations)
        plants = intervals.paired_interval(differences, 0.95, clustered)
        by_photo += photos["low"] <= 0.05 <= photos["high"]
        by_observation += plants["low"] <= 0.05 <= plants["high"]
    assert by_photo / 1000 < 0.93  # 0.92 here
    assert 0.94 <= by_observation / 1000 <= 0.995


def test_observations_of_one_photo_each_are_the_photo_bootstrap():
    rng = np.random.default_rng(3)
    per_photo = rng.integers(-1, 2, size=(3, 12))
    labels = np.repeat([0, 1, 2], 4)
    expected = intervals.photo_variance(per_photo, labels, "macro")
    assert intervals.photo_variance(per_photo, labels, "macro", clusters=np.arange(12) * 7) == pytest.approx(expected)


def test_observation_clusters_are_keyed_by_the_digest_of_the_photos_the_protocols_score():
    manifest = pd.DataFrame(
        {
            "species": ["A", "B", None, "A", "B", "A"],
            "observation_id": ["o1", "o2", "o3", "o1", None, "o4"],
        }
    )
    splits = pd.DataFrame({"split": ["test", "test", "test", "test", "test", "train"]})
    (digest, clusters), *more = cmp.observation_clusters(manifest, splits).items()
    # scored: rows 0, 1, 3, 4 (row 2 has no species, row 5 is train); rows 0 and 3 are one plant
    assert not more and digest == hit_record(np.eye(2)[[0, 1, 0, 1]], np.array([0, 1, 0, 1]), [0, 1, 3, 4])["rows_sha1"]
    assert clusters[0] == clusters[2] and len(set(clusters)) == 3


# ---------------------------------------------------------------------------------------------- the photo term
def test_photo_variance_hand_computed():
    # Two replicates, four photos, species 0 0 1 1. D (mean over replicates) = 1, 0, 0.5, 0; var within species
    # (ddof 1): 0.5 and 0.125. Replicate means 0.5, 0.25, grand 0.375; residuals E - D - row + grand:
    # row 0: -0.125 -0.125 0.375 -0.125, row 1 their negatives: sum of squares 0.375, / ((2-1)(4-1)) = 0.125.
    # micro weights 1/4: 2 * (1/16) * (0.5 - 0.125/2) + 2 * (1/16) * (0.125 - 0.125/2) = 0.0546875 + 0.0078125.
    per_photo = np.array([[1, 0, 1, 0], [1, 0, 0, 0]])
    labels = np.array([0, 0, 1, 1])
    assert intervals.photo_variance(per_photo, labels, "micro") == pytest.approx(0.0625)
    # Macro weights are 1/(2 species x 2 photos) = 1/4 as well: the same here.
    assert intervals.photo_variance(per_photo, labels, "macro") == pytest.approx(0.0625)
    # Identical replicates have no residual: then it is the raw stratified variance 2/16 * 0.5 + 2/16 * 0.125.
    assert intervals.photo_variance(per_photo[[0, 0]], labels, "micro") == pytest.approx(0.125 * 0.5 + 0.125 * 0.5)


@pytest.mark.parametrize("weighting", ["micro", "macro"])
def test_photo_variance_is_the_stratified_bootstrap_in_closed_form(weighting):
    """A brute-force species-stratified bootstrap of the weighted mean of one replicate's photo differences agrees
    with the closed form (whose within-species variances have ddof 1, the bootstrap's ddof 0)."""
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], [30, 50, 80])
    per_photo = rng.integers(-1, 2, (1, labels.size))
    weights = intervals.photo_weights(labels, weighting)
    draws = np.empty(20000)
    index = [np.flatnonzero(labels == c) for c in range(3)]
    for b in range(draws.size):
        sample = np.concatenate([rng.choice(rows, rows.size) for rows in index])
        draws[b] = (weights[sample] * per_photo[0, sample]).sum()
    bootstrap = sum(rows.size * weights[rows[0]] ** 2 * per_photo[0, rows].var(ddof=0) for rows in index)
    assert draws.var() == pytest.approx(bootstrap, rel=0.05)
    ddof_1 = sum(rows.size * weights[rows[0]] ** 2 * per_photo[0, rows].var(ddof=1) for rows in index)
    assert intervals.photo_variance(per_photo, labels, weighting) == pytest.approx(ddof_1)


def test_photo_weights():
    labels = np.array([3, 3, 3, 7])
    assert intervals.photo_weights(labels, "micro") == pytest.approx([0.25] * 4)
    assert intervals.photo_weights(labels, "macro") == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])


# ---------------------------------------------------------------------------------------------- hit records
def test_hit_record_round_trip():
    rng = np.random.default_rng(3)
    scores, labels = rng.random((13, 300)), rng.integers(0, 300, 13)  # 13 photos: not a whole byte; labels > 255
    labels[:4] = scores[:4].argmax(1)  # some top-1 hits
    record = json.loads(json.dumps(hit_record(scores, labels, np.arange(100, 113))))
    hits, decoded_labels = read_hits(record)
    assert record["n"] == 13 and record["label_dtype"] == "<u2"
    for k in (1, 5):
        np.testing.assert_array_equal(hits[k], hits_in_ranked(ranked_classes(scores, k), labels, k))
    assert hits[1][:4].all()
    np.testing.assert_array_equal(decoded_labels, labels)
    assert len(record["top1"]) == 4  # 13 bits -> 2 bytes -> 4 base64 characters
    other_photos = hit_record(scores, labels, np.arange(200, 213))
    assert other_photos["rows_sha1"] != record["rows_sha1"]
    assert hit_record(scores[::-1], labels, np.arange(100, 113))["rows_sha1"] == record["rows_sha1"]


def test_score_records_the_hits():
    from geocontrast.evaluate.protocols import EvalRows, score

    labels = np.array([0, 1, 1, 0])
    rows = EvalRows(
        train=np.arange(2),
        val=np.arange(2),
        test=np.array([2, 3, 4, 5]),
        codes=np.array([0, 1, *labels]),
        names=["a", "b"],
        ancestors={"species": np.arange(2)},
    )
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    hits, decoded = read_hits(score(probs, rows)["test_hits"])
    np.testing.assert_array_equal(hits[1], [True, False, True, False])
    np.testing.assert_array_equal(decoded, labels)


# ---------------------------------------------------------------------------------------------- the table and words
def test_comparison_pairs_each_once():
    pairs = cmp.comparison_pairs(["augmented", "context_pos", "random_init", "supervised"], "augmented")
    assert pairs == [
        ("context_pos", "augmented"),
        ("supervised", "augmented"),
        ("augmented", "random_init"),
        ("context_pos", "random_init"),
        ("supervised", "random_init"),
    ]
    assert cmp.comparison_pairs(["context_pos", "random_init"], "augmented") == [("context_pos", "random_init")]


def simulated_resolve_rate(mean: float, sd: float, m: int, n_experiments: int = 40_000, seed: int = 0) -> float:
    """Share of simulated m-replicate experiments (differences drawn N(mean, sd)) whose t interval excludes 0."""
    draws = np.random.default_rng(seed).normal(mean, sd, size=(n_experiments, m))
    half = stats.t.ppf(0.975, m - 1) * draws.std(axis=1, ddof=1) / np.sqrt(m)
    return float((np.abs(draws.mean(axis=1)) > half).mean())


def test_replicates_to_resolve_plans_for_80_percent_power_as_a_simulation_finds():
    sd = np.std([-0.02, -0.04, -0.09], ddof=1)
    needed = intervals.replicates_to_resolve(-0.05, sd, 3)
    assert 3 < needed < intervals.MAX_REPLICATES
    for m in (3, int(needed) - 1, int(needed), 12):
        assert intervals.resolve_power(-0.05, sd, m) == pytest.approx(simulated_resolve_rate(-0.05, sd, m), abs=0.03)
    # the smallest m the formula accepts: a simulation resolves about 80 % there, and fewer one replicate before
    assert simulated_resolve_rate(-0.05, sd, int(needed)) > intervals.POWER - 0.03
    assert simulated_resolve_rate(-0.05, sd, int(needed) - 1) < intervals.POWER + 0.03
    # a photo term of its own wider than the mean: no replicate count resolves it (inf), and the text says why
    assert np.isinf(intervals.replicates_to_resolve(-0.05, sd, 3, photo_se=0.06 / 1.96))
    assert intervals.floor_exceeds(-0.05, sd, photo_se=0.06 / 1.96)
    assert not intervals.floor_exceeds(-0.05, sd, photo_se=0.04 / 1.96)
    assert intervals.replicates_to_resolve(-0.05, sd, 3, photo_se=0.02) > needed
    assert np.isinf(intervals.replicates_to_resolve(0.001, 0.05, 3))  # beyond MAX_REPLICATES
    assert np.isnan(intervals.replicates_to_resolve(-0.05, np.nan, 1))
    assert np.isnan(intervals.replicates_to_resolve(-0.05, 0.0, 3))  # no spread: nothing to plan with


def test_holm_on_a_hand_case():
    # sorted 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, raised to 0.06); NaN kept out
    adjusted = intervals.holm([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02, np.nan])
    assert intervals.holm([0.6, 0.5]).tolist() == [1.0, 1.0]


def test_equal_differences_have_no_interval_and_are_never_resolved():
    interval = intervals.paired_interval(np.array([0.01, 0.01, 0.01]))
    assert interval["mean"] == pytest.approx(0.01) and np.isnan(interval["low"]) and np.isnan(interval["p"])
    assert intervals.verdict(3, interval["low"], interval["high"]) == "unresolved (no spread)"
    results = results_frame({"augmented": [0.50, 0.52, 0.55], "context_pos": [0.51, 0.53, 0.56]})
    row = cmp.compare(results, settings=cmp.CompareSettings(metrics=("top1",))).iloc[0]
    assert row["verdict"] == "unresolved (no spread)" and not row["resolved"]


def test_the_p_value_is_the_level_at_which_the_interval_touches_zero():
    differences = np.array([0.03, 0.05, 0.02, 0.06])
    for photo_variance in (0.0, 0.01**2, 0.02**2):
        p = intervals.paired_interval(differences, 0.95, photo_variance)["p"]
        at_p = intervals.paired_interval(differences, 1 - p, photo_variance)
        assert at_p["low"] == pytest.approx(0.0, abs=1e-9)
    t = differences.mean() / (differences.std(ddof=1) / 2)
    assert intervals.paired_interval(differences)["p"] == pytest.approx(2 * stats.t.sf(t, 3))


def test_the_corrected_resampled_t_widens_the_replicate_term_by_the_pool_ratio():
    differences = np.array([0.02, 0.04, 0.09])
    plain = intervals.paired_interval(differences)
    corrected = intervals.paired_interval(differences, rho=0.2 / 0.7)  # the default split: test 20 %, train 70 %
    assert corrected["replicate_se"] / plain["replicate_se"] == pytest.approx(np.sqrt((1 / 3 + 0.2 / 0.7) * 3))
    assert corrected["replicate_se"] / plain["replicate_se"] == pytest.approx(1.36, abs=0.01)


def test_the_pool_ratio_is_read_from_the_replicates_split_summaries(tmp_path):
    for rep, (train, test) in enumerate([(700, 200), (690, 210)]):
        splits = {"train": {"n_images": train}, "val": {"n_images": 100}, "test": {"n_images": test}}
        (tmp_path / f"{rep}.json").write_text(json.dumps({"splits": splits}))
    assert cmp.pool_ratio([tmp_path / "0.json", tmp_path / "1.json"]) == pytest.approx((200 / 700 + 210 / 690) / 2)
    assert cmp.pool_ratio([]) == 0.0


def test_missing_pairs_nan_and_one_replicate():
    results = results_frame(
        {"augmented": [0.50, 0.52, 0.55], "byol": [0.60], "triplet": [0.51, np.nan, 0.57], "random_init": [0.3, 0.3]}
    )
    comparisons = cmp.compare(results, settings=cmp.CompareSettings(metrics=("top1",))).set_index(
        ["strategy", "reference"]
    )
    byol = comparisons.loc[("byol", "augmented")]
    assert byol["n_pairs"] == 1 and byol["n_unpaired"] == 2 and byol["verdict"] == "unresolved (1 replicate)"
    assert byol["diff"] == pytest.approx(0.10) and not byol["resolved"]
    triplet = comparisons.loc[("triplet", "augmented")]
    assert triplet["n_pairs"] == 2 and triplet["n_unpaired"] == 1
    assert triplet["diff"] == pytest.approx(0.015)
    half = stats.t.ppf(0.975, 1) * np.std([0.01, 0.02], ddof=1) / np.sqrt(2)
    assert triplet["high"] == pytest.approx(0.015 + half)
    assert comparisons.loc[("augmented", "random_init"), "n_pairs"] == 2
    words = text.plain_words(comparisons.reset_index())
    line = next(line for line in words.splitlines() if "byol \u2212 augmented" in line)
    assert line.split()[-6:] == ["+10.0", "\u2013", "unresolved", "(1", "replicate)", "n=1"]


def hit_records(results, photo_sets):
    """Hit records for every results row; ``photo_sets[seed]`` names the test photos of that replicate."""
    rng = np.random.default_rng(4)
    records = {}
    for row in results.itertuples():
        n = 40
        labels = np.arange(n) % 4
        scores = rng.random((n, 4))
        key = (row.strategy, row.protocol, float(row.label_fraction), int(row.seed))
        records[key] = cmp.PhotoHits.from_record(hit_record(scores, labels, photo_sets[row.seed] + np.arange(n)))
    return records


def test_test_sampling_from_the_records():
    results = results_frame({"augmented": [0.50, 0.52, 0.55], "context_pos": [0.40, 0.41, 0.45]})
    shared = cmp.compare(
        results,
        hit_records(results, [0, 0, 0]),
        settings=cmp.CompareSettings(
            metrics=(
                "top1",
                "macro_top1",
            )
        ),
    )
    assert set(shared["test_sampling"]) == {"photo_bootstrap"} and (shared["photo_se"] >= 0).all()
    redrawn = cmp.compare(results, hit_records(results, [0, 100, 200]), cmp.CompareSettings(metrics=("top1",)))
    assert set(redrawn["test_sampling"]) == {"in_replicates"} and (redrawn["photo_se"] == 0).all()
    broken = hit_records(results, [0, 100, 200])
    broken[("context_pos", "linear", 10.0, 1)] = broken[("context_pos", "linear", 10.0, 0)]
    with pytest.raises(ValueError, match="different test photos"):
        cmp.compare(results, broken)


def test_compare_settings_refuse_an_unknown_metric_and_a_bad_contrast_naming_the_key():
    with pytest.raises(ValueError, match=r"compare.metrics\[0\]: expected one of .*got 'prior_top1'"):
        cmp.CompareSettings.from_mapping({"metrics": ["prior_top1"]})
    with pytest.raises(ValueError, match=r"compare.contrasts: expected \[strategy, against\] pairs"):
        cmp.CompareSettings.from_mapping({"contrasts": [["a", "b", "c"]]})


# ---------------------------------------------------------------------------------------------- forest plot
def test_forest_plot_rows_and_markers():
    from geocontrast.report.forest import forest_plot
    from geocontrast.report.style import plt

    strategies = ["augmented", "random_init", *(f"s{i}" for i in range(10))]
    rng = np.random.default_rng(5)
    values = {s: list(0.5 + rng.normal(0, 0.02, 3)) for s in strategies}
    values["s0"] = [v + 0.2 for v in values["augmented"]]  # resolved for sure: the same spread, shifted
    frames = [results_frame(values, protocol=p) for p in ("finetune", "linear")]
    comparisons = cmp.compare(pd.concat(frames, ignore_index=True))
    figure = forest_plot(comparisons, figure_width_in=7.0)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["fine-tune", "linear probe"]
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert len(labels) == 21 and labels[0] == "s0 \u2212 augmented" and labels[10] == "augmented \u2212 random_init"
    first = next(line for line in axes[0].get_lines() if line.get_marker() == "o")
    assert first.get_xdata()[0] == pytest.approx(20.0) and first.get_markerfacecolor() != "white"
    plt.close(figure)


def test_the_schema_offers_exactly_the_compared_metrics():
    from conftest import REPO

    schema = json.loads((REPO / "workflow" / "schemas" / "config.schema.json").read_text())
    assert schema["properties"]["compare"]["properties"]["metrics"]["items"]["enum"] == list(cmp.METRICS)


def test_the_prior_gain_is_averaged_over_replicates_with_a_t_interval():
    results = pd.DataFrame(
        {
            "strategy": ["augmented"] * 3 + ["supervised"],
            "protocol": ["linear"] * 4,
            "label_fraction": [10.0] * 4,
            "seed": [0, 1, 2, 0],
            "prior_gain_top1": [0.02, 0.025, 0.03, -0.01],
        }
    )
    gains = cmp.prior_gains(results)
    augmented = gains.iloc[0]
    half = stats.t.ppf(0.975, 2) * 0.005 / np.sqrt(3)
    assert augmented["diff"] == pytest.approx(0.025)
    assert (augmented["low"], augmented["high"]) == pytest.approx((0.025 - half, 0.025 + half))
    assert augmented["verdict"] == "resolved" and gains.iloc[1]["verdict"] == "unresolved (1 replicate)"
    assert augmented["p_adjusted"] == pytest.approx(augmented["p_value"])  # the only gain with a p-value
    words = text.prior_gain_words(gains)
    assert "over these 1 gains" in words
    line = next(line for line in words.splitlines() if line.startswith("  augmented"))
    assert "+2.5 [" in line and "resolved" in line and line.endswith("n=3")
    assert text.prior_gain_words(cmp.prior_gains(results.assign(prior_gain_top1=np.nan))) == ""
    assert cmp.prior_gains(results.drop(columns="prior_gain_top1")).empty


def test_an_unresolved_exploratory_line_is_planned_at_its_family_level_never_at_fewer_replicates_than_it_has():
    rng = np.random.default_rng(6)
    base = np.array([0.50, 0.52, 0.55])
    strategies = {f"s{i}": base + 0.06 + rng.normal(0, 0.01, 3) for i in range(8)}  # clear, modest gains
    comparisons = cmp.compare(results_frame({"augmented": base, **strategies}), settings=cmp.CompareSettings())
    exploratory = comparisons[(comparisons["role"] == "exploratory") & (comparisons["verdict"] == "unresolved")]
    assert not exploratory.empty and (exploratory["low"] > 0).any()  # excludes 0, yet unresolved after Holm
    family = comparisons["p_value"].notna().sum()
    np.testing.assert_allclose(exploratory["planning_confidence"], 1 - 0.05 / family)
    assert (exploratory["replicates_to_resolve"] > exploratory["n_pairs"]).all()
