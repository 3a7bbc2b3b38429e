"""Pretraining strategies by name (a plain registry, as solo-learn's ``METHODS``).

Each strategy supplies how pairs are drawn and which loss; the loop in :mod:`geocontrast.train.loop` owns the
rest. Adding a strategy: one module here, one entry below and one in :data:`geocontrast.registry.STRATEGIES`
(its options and geo tables, which the workflow plans with); ``tests/test_settings.py`` then names what to add to
the schema's strategy list and options and to config/README.md's strategy table.
"""

from geocontrast import registry
from geocontrast.geo.training_data import TrainingData
from geocontrast.strategies.augmented import Augmented
from geocontrast.strategies.autoencoder import Autoencoder
from geocontrast.strategies.base import PairBatch, Strategy
from geocontrast.strategies.byol import BYOL
from geocontrast.strategies.context_filtered import ContextFiltered
from geocontrast.strategies.context_pos import ContextPositive
from geocontrast.strategies.context_pos_neg import ContextPositiveNegative
from geocontrast.strategies.geo_pretext import GeoPretext
from geocontrast.strategies.location_align import LocationAlign
from geocontrast.strategies.observation_pos import ObservationPositive
from geocontrast.strategies.oracle import Oracle
from geocontrast.strategies.simsiam import SimSiam
from geocontrast.strategies.supervised import Classifier, Supervised, SupervisedFull
from geocontrast.strategies.swav import SwAV
from geocontrast.strategies.triplet import Triplet

STRATEGIES: dict[str, type[Strategy]] = {
    "supervised": Supervised,
    "supervised_full": SupervisedFull,
    "augmented": Augmented,
    "context_pos": ContextPositive,
    "context_pos_neg": ContextPositiveNegative,
    "location_align": LocationAlign,
    "geo_pretext": GeoPretext,
    "observation_pos": ObservationPositive,
    "context_filtered": ContextFiltered,
    "classifier": Classifier,
    "triplet": Triplet,
    "autoencoder": Autoencoder,
    "simsiam": SimSiam,
    "byol": BYOL,
    "swav": SwAV,
    "oracle": Oracle,
}


def build_strategy(name: str, data: TrainingData, settings) -> Strategy:
    """The registered strategy ``name`` on ``data`` under the job's ``settings``
    (:class:`geocontrast.train.settings.PretrainSettings`); an unknown name lists the registered ones."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; registered: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](data, settings)


def required_tables(name: str, options: dict | None = None) -> tuple[str, ...]:
    """The geo tables strategy ``name`` needs under its ``options`` ("neighbours", "negatives")."""
    return registry.strategy(name).tables(options)


__all__ = ["STRATEGIES", "PairBatch", "Strategy", "build_strategy", "required_tables"]
