"""One training budget for every strategy: the same optimiser steps at the same batch size, and what they cost.

An epoch is measured over the whole train split, whatever the strategy's anchors: ``n_train // batch_size``
optimiser steps (at most ``steps_per_epoch``), each on ``batch_size`` anchors. A strategy whose anchors are a
subset of the train rows (``supervised``: its labelled rows) cycles over them until the epoch's steps are spent:
each pass over its anchors is a fresh permutation cut into whole batches (the remainder waits for the next pass,
so no batch holds an anchor twice), and every permutation of epoch e comes from the epoch's generator,
``numpy.random.default_rng([seed, e])``, before it draws any pair. A resumed run therefore draws them again
exactly, and a strategy whose anchors are the train split draws one permutation per epoch, as it always did.

Why epochs over the train set rather than a separate ``steps`` key: the checkpoint, the metrics line and the
learning-rate schedule already count in epochs, configs written for the self-supervised strategies keep their
meaning, and ``epochs`` × ``steps_per_epoch`` is the budget in steps all the same, now equal across strategies
(before, ``supervised`` took 2 steps per epoch on its 295 labelled rows against ~22 for the others).

What a job spent is recorded by :mod:`geocontrast.train.spent`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geocontrast.train.settings import PretrainSettings


@dataclass(frozen=True)
class Budget:
    """``epochs`` of ``steps_per_epoch`` optimiser steps on ``batch_size`` anchors (global, all processes) drawn
    from a pool of ``anchor_pool`` rows."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    anchor_pool: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def plan_budget(n_train: int, n_anchors: int, settings: PretrainSettings, round_batch=lambda size: size) -> Budget:
    """The budget of ``settings`` (epochs, batch_size, steps_per_epoch) for a strategy with ``n_anchors`` anchors
    on a train split of ``n_train`` rows; ``round_batch`` rounds a batch size to what the processes can share.

    The batch is smaller than ``batch_size`` only where the train split, or the strategy's anchors, hold fewer
    rows than one batch; the number of steps never depends on the strategy.
    """
    epoch_batch = round_batch(min(int(settings.batch_size), n_train))
    steps_per_epoch = max(1, n_train // epoch_batch)
    if settings.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, int(settings.steps_per_epoch))
    return Budget(int(settings.epochs), steps_per_epoch, round_batch(min(epoch_batch, n_anchors)), n_anchors)


def epoch_batches(anchors: np.ndarray, batch_size: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(steps, batch_size) anchor rows of one epoch: whole batches cut from as many fresh permutations of
    ``anchors`` as ``steps`` need, all drawn from ``rng`` first."""
    per_pass = anchors.size // batch_size
    if per_pass < 1:
        raise ValueError(f"{anchors.size} anchors cannot fill a batch of {batch_size}")
    passes = -(-steps // per_pass)
    cut = per_pass * batch_size
    return np.concatenate([rng.permutation(anchors)[:cut].reshape(per_pass, batch_size) for _ in range(passes)])[:steps]
