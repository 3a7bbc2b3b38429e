"""Pretraining strategies by name (a plain registry, as solo-learn's ``METHODS``).

Each strategy supplies how pairs are drawn and which loss; the loop in :mod:`geocontrast.train.loop` owns the
rest. Adding a strategy: one module here and one entry below.
"""

from geocontrast.strategies.augmented import Augmented
from geocontrast.strategies.base import PairBatch, Strategy, TrainingData, training_data
from geocontrast.strategies.context_pos import ContextPositive
from geocontrast.strategies.context_pos_neg import ContextPositiveNegative
from geocontrast.strategies.supervised import Supervised, SupervisedFull

STRATEGIES: dict[str, type[Strategy]] = {
    "supervised": Supervised,
    "supervised_full": SupervisedFull,
    "augmented": Augmented,
    "context_pos": ContextPositive,
    "context_pos_neg": ContextPositiveNegative,
}


def build_strategy(name: str, data: TrainingData, params: dict) -> Strategy:
    """The registered strategy ``name`` on ``data``; an unknown name lists the registered ones."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; registered: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](data, params)


__all__ = ["STRATEGIES", "PairBatch", "Strategy", "TrainingData", "build_strategy", "training_data"]
