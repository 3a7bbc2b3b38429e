"""Training checkpoints: ``last.pt`` (everything a killed job needs to resume) and ``encoder.pt`` (the result).

Both are written to a temporary file beside the target and renamed into place, so a kill mid-write leaves the
previous file intact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from geocontrast.atomic import atomic_path

LAST = "last.pt"
ENCODER = "encoder.pt"


def atomic_save(obj, path: Path) -> None:
    """torch.save to ``path`` via a temporary file and an atomic rename."""
    with atomic_path(path) as partial:
        torch.save(obj, partial)


def rng_states() -> dict:
    """Global torch (CPU and CUDA) and numpy RNG states."""
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_last(
    out_dir: Path, model: torch.nn.Module, optimiser, scheduler, epoch: int, step: int, extra: dict | None = None
) -> Path:
    """Write ``out_dir/last.pt``: model (encoder + heads), optimiser, scheduler, RNG states, epoch, step."""
    path = Path(out_dir) / LAST
    atomic_save(
        {
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_states(),
            "epoch": int(epoch),
            "step": int(step),
            **(extra or {}),
        },
        path,
    )
    return path


def load_last(out_dir: Path, model: torch.nn.Module, optimiser, scheduler) -> dict | None:
    """Restore a run from ``out_dir/last.pt`` if it exists; returns the checkpoint (epoch, step, ...) or None."""
    path = Path(out_dir) / LAST
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng_states(state["rng"])
    return state


def save_encoder(out_dir: Path, encoder: torch.nn.Module, strategy: str, params: dict, budget: dict) -> Path:
    """Write ``out_dir/encoder.pt``: {"encoder": state_dict, "encoder_name", "strategy", "params", "budget"};
    ``budget``: what the job spent (:data:`geocontrast.train.spent.SPENT_KEYS`) and on what (anchor_pool,
    batch_size, label_fraction: percent of the train labels the strategy trained on)."""
    path = Path(out_dir) / ENCODER
    state = {key: value.detach().cpu() for key, value in encoder.state_dict().items()}
    saved = {"encoder": state, "encoder_name": params["encoder"], "strategy": strategy, "params": dict(params)}
    atomic_save({**saved, "budget": dict(budget)}, path)
    return path


def load_encoder(path: Path, small_input: bool = True) -> torch.nn.Module:
    """Rebuild the encoder saved by :func:`save_encoder` (weights loaded, eval mode)."""
    from geocontrast.models import build_encoder

    saved = torch.load(path, map_location="cpu", weights_only=False)
    encoder = build_encoder(saved["encoder_name"], small_input=small_input)
    encoder.load_state_dict(saved["encoder"])
    return encoder.eval()
