"""What the workflow needs to know to plan, as plain data: every strategy, evaluation protocol and downstream task
by name, with its options, the geo tables it reads and the config section it takes its settings from.

The Snakemake workflow (``workflow/rules/common.smk``), the schema test and the CLIs read this module to plan and
check arguments without importing torch: it imports nothing but the standard library. The strategy classes
(:mod:`geocontrast.strategies`) take their options and tables from here, so there is one list of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

POSITIVE_SOURCES = ("augmentation", "neighbour", "observation")
NEGATIVE_SOURCES = ("random", "geo")
EXTRA_NEGATIVE_SOURCES = ("none", *NEGATIVE_SOURCES)
CHOICES = {
    "positive": POSITIVE_SOURCES,
    "negative": NEGATIVE_SOURCES,
    "extra_negatives": EXTRA_NEGATIVE_SOURCES,
    "mask": (True, False),
}
"""Options that choose an ingredient, and their values; the geographic ones need a geo table."""
TABLE_OF_CHOICE = {
    ("positive", "neighbour"): "neighbours",
    ("negative", "geo"): "negatives",
    ("extra_negatives", "geo"): "negatives",
    ("mask", True): "negatives",  # the geo-near mask uses the negative table's false-negative radius
}

PROJECTION = {"projection_dim": 128, "projection_hidden_dim": 512}
SOFT_MASK = {"near_weight": 0.0, "near_scale_km": None, "near_smoothing": 0.0}
"""How hard the geo-near mask is: the denominator weight of a geo-near item (0: dropped, 1: a plain negative),
fading towards 1 with distance over ``near_scale_km`` (None: no fading), and the target share its views take."""
AUXILIARY = {
    "location_weight": 0.0,
    "location_temperature": 0.07,
    "location_date": True,
    "pretext_weight": 0.0,
    "pretext_clusters": 100,
}
"""Auxiliary geographic terms on the anchor's features, each weighted by its ``*_weight`` (0: absent): a symmetric
InfoNCE between image and location (+ date) embeddings, and the prediction of the photo's k-means geographic cluster."""
APPEARANCE_FILTER = {"filter_temperature": None, "bank_refreshes_per_epoch": 1}
"""How ``neighbour`` positives are drawn among an anchor's neighbours: with probability ∝ exp(cosine / τ) under the
current encoder's embeddings (τ = ``filter_temperature``; None: uniformly, as τ → ∞), re-embedded this many times
per epoch."""
NT_XENT = {
    "positive": "augmentation",
    "extra_negatives": "none",
    "mask": False,
    **SOFT_MASK,
    **AUXILIARY,
    **APPEARANCE_FILTER,
    **PROJECTION,
}
"""The NT-Xent strategies are points of one factorial (:mod:`geocontrast.strategies.contrastive`): each option
switches one geographic ingredient, so a control differs from its counterpart by that ingredient alone; the
``near_*`` options soften the mask (they act only with ``mask`` true)."""
CLASSIFIER = {"hidden_dim": 0, "dropout": 0.0}
SIAMESE = {"positive": "augmentation", **PROJECTION, "predictor_hidden_dim": 64}


@dataclass(frozen=True)
class StrategySpec:
    """A pretraining strategy as the workflow sees it.

    ``options``: its own settings and their defaults (config ``pretrain.strategy_options.<name>`` overrides them);
    ``requires``: geo tables it reads whatever its options ("neighbours", "negatives"); the ``positive`` /
    ``negative`` options add the table of a geographic source (:data:`TABLE_OF_CHOICE`); ``label_budget``: it
    trains on the labels of a label budget, so the workflow pretrains it once per evaluated budget
    (``evaluate.label_fractions``) on that budget's labelled rows and evaluates each budget with its own encoder.
    """

    name: str
    options: dict = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    label_budget: bool = False  # trains on the labelled subset of a budget: one encoder per evaluated budget

    @property
    def config_section(self) -> str:
        return f"pretrain.strategy_options.{self.name}"

    def resolve_options(self, options: dict | None = None) -> dict:
        """``options`` over the defaults; an unknown key or source value is refused, naming the config key."""
        options = options or {}
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(
                f"unknown options {unknown} for strategy {self.name!r} ({self.config_section}); "
                f"known: {sorted(self.options) or 'none'}"
            )
        resolved = {**self.options, **options}
        for option, values in CHOICES.items():
            if option in resolved and resolved[option] not in values:
                raise ValueError(
                    f"{self.config_section}.{option} must be one of {list(values)}, got {resolved[option]!r}"
                )
        return resolved

    def tables(self, options: dict | None = None) -> tuple[str, ...]:
        """The geo tables this strategy reads under ``options`` (resolved over its defaults)."""
        resolved = self.resolve_options(options)
        chosen = (TABLE_OF_CHOICE.get((option, resolved[option])) for option in CHOICES if option in resolved)
        return tuple(dict.fromkeys((*self.requires, *(table for table in chosen if table))))


STRATEGIES: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        StrategySpec("supervised", CLASSIFIER, label_budget=True),
        StrategySpec("supervised_full", CLASSIFIER),
        StrategySpec("augmented", NT_XENT),
        StrategySpec("context_pos", {**NT_XENT, "positive": "neighbour"}),
        StrategySpec("context_pos_neg", {**NT_XENT, "positive": "neighbour", "extra_negatives": "geo", "mask": True}),
        StrategySpec("location_align", {**NT_XENT, "location_weight": 1.0}),
        StrategySpec("geo_pretext", {**NT_XENT, "pretext_weight": 1.0}),
        StrategySpec("observation_pos", {**NT_XENT, "positive": "observation"}),
        StrategySpec("context_filtered", {**NT_XENT, "positive": "neighbour", "filter_temperature": 0.1}),
        StrategySpec("classifier", {"hidden_dim": 512, "dropout": 0.5}, label_budget=True),
        StrategySpec(
            "triplet",
            {
                "positive": "neighbour",
                "negative": "geo",
                "margin": 0.2,
                "embedding_dim": 128,
                "embedding_hidden_dim": 512,
            },
        ),
        StrategySpec("autoencoder", {"latent_dim": 256, "decoder_channels": 256}),
        StrategySpec("simsiam", SIAMESE),
        StrategySpec("byol", {**SIAMESE, "predictor_hidden_dim": 512, "momentum": 0.99}),
        StrategySpec(
            "swav",
            {
                "positive": "augmentation",
                **PROJECTION,
                "n_prototypes": 128,
                "sinkhorn_epsilon": 0.05,
                "sinkhorn_iterations": 3,
                "freeze_prototypes_steps": 20,
                "extra_crops": 0,
            },
        ),
        StrategySpec("oracle", PROJECTION),
    )
}
"""Every pretraining strategy, in the order the docs list them."""


def strategy(name: str) -> StrategySpec:
    """The registered strategy ``name``; an unknown name lists the registered ones."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; registered: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


PRETRAIN_JOB_KEYS = ("strategies", "arms", "seeds", "gpus", "strategy_options")
"""Keys of config ``pretrain`` that choose the jobs and how they launch, not how one trains: the workflow passes a
job the rest of the section, with its own ``seed`` (one of ``seeds``) and ``options``
(``strategy_options.<strategy>``), as :class:`geocontrast.train.settings.PretrainSettings`."""

QUALITIES = ("clean", "down2", "down4", "jpeg10", "saltpepper")
"""Pretraining-image qualities of an arm (``pretrain.arms.<arm>.quality``, :mod:`geocontrast.data.quality`):
evaluation always reads the clean cache."""

RANKS = ("species", "genus", "family", "order", "class", "phylum", "kingdom")
PROBE_RANKS = RANKS[1:]


@dataclass(frozen=True)
class EvaluationSpec:
    """An evaluation protocol or downstream task: ``section`` is the ``evaluate.<section>`` config it reads its
    params from; ``frozen``: it reads the frozen features (the frozen job runs every such one from one
    embedding); ``pairs``: it also reads the genus pairs chosen for its label budget."""

    name: str
    section: str
    frozen: bool = True
    pairs: bool = False


PROTOCOLS: dict[str, EvaluationSpec] = {
    spec.name: spec
    for spec in (
        EvaluationSpec("finetune", "finetune", frozen=False),
        EvaluationSpec("linear", "linear"),
        EvaluationSpec("knn", "knn"),
    )
}
"""The protocols of config ``evaluate.protocols``."""

TASKS: dict[str, EvaluationSpec] = {
    spec.name: spec
    for spec in (
        EvaluationSpec("genus_pairs", "linear", pairs=True),
        EvaluationSpec("mislabel", "mislabel"),
        EvaluationSpec("clustering", "clustering"),
        *(EvaluationSpec(f"{rank}_probe", "linear") for rank in PROBE_RANKS),
    )
}
"""The downstream tasks of config ``evaluate.tasks`` (all on frozen features); ``<rank>_probe`` is the linear
probe on labels at that rank, with the linear probe's params; genus_pairs' binary probes use them too (its pairs
are chosen once per budget with ``evaluate.genus_pairs``)."""

FUSION = EvaluationSpec("fusion", "linear", frozen=False)
"""The linear probe on the concatenated frozen features of two strategies (config ``evaluate.fusion``): its rows
are strategy ``<first>+<second>`` (:data:`FUSION_SEPARATOR`), protocol ``fusion``, with the linear probe's params."""
FUSION_SEPARATOR = "+"

BASELINE = "most_common"
"""The most-common-species baseline, evaluated as protocol ``baseline`` of this pseudo-strategy."""
RANDOM_INIT = "random_init"
"""The untrained encoder, evaluated as a strategy."""
