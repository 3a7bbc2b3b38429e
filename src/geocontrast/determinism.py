"""The config's ``deterministic`` switch: bit-identical results from the stages that run torch, on any core count.

Every stage already seeds its own generators from the config (batch order, pair draws, augmentations, weight
initialisation), so two runs on the same machine with the same ``--cores`` give the same numbers. What still
varies is the kernels: on CPU, a convolution split over 2 threads sums in another order than over 1 (measured on
cnn5: different gradients with 1 and 2 threads, identical ones for two runs with 2), and on CUDA, cuDNN's
autotuner and atomics-based kernels pick different reduction orders from run to run. With the switch on, the
pretraining loop, the embedding of frozen features and fine-tuning call :func:`make_deterministic` before they
compute anything: one CPU thread, and torch's deterministic algorithms. An op that has no deterministic kernel on
the device (on CUDA, e.g. the backward of adaptive average pooling, which the ResNets use) warns in the job's
log, naming itself, instead of stopping the job: CPU runs are bit-identical; GPU runs are as close as torch allows,
and the warnings say what still varies (this switch has not been tried on a GPU yet). The price is speed: one core
instead of all of them on CPU.
"""

from __future__ import annotations

import os

import torch

# cuBLAS needs a fixed workspace to be deterministic; it must be set before the first cuBLAS call.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def make_deterministic(device: torch.device) -> None:
    """Make this process's torch computations reproducible bit for bit on ``device`` (see the module docstring)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    else:
        torch.set_num_threads(1)
