"""Where and how the torch stages run: device, AMP, threads, the allocator, and cache rows through an encoder.

Training (:mod:`geocontrast.train.loop`) and evaluation (:mod:`geocontrast.evaluate`) both call these, so they
live below both layers and import nothing else of the package. The input convention every encoder sees is here
too: uint8 (B, H, W, 3) cache rows become float (B, 3, H, W) standardised with the ImageNet mean and std
(:func:`normalise`), the last step of :class:`~geocontrast.train.augment.BatchAugment` as well.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN = (0.485, 0.456, 0.406)  # ImageNet per-channel mean
STD = (0.229, 0.224, 0.225)  # ImageNet per-channel std
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else CPU; ``cuda`` without a GPU is refused."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA GPU")
    return torch.device(device)


def cpu_supports_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where the CPU has native bf16 instructions (AMX-BF16 or AVX512-BF16 in the Linux CPU flags).

    oneDNN also reports bf16 "support" on plain AVX-512, where it is emulated and measured 2x slower than fp32
    (cnn5, 32 px, batch 256, 2 cores), so its answer is not used. Unknown (no cpuinfo): False, i.e. fp32.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (bf16) or None for fp32; ``auto`` picks bf16 where ``device`` runs it natively."""
    if amp not in ("auto", "bf16", "fp32"):
        raise ValueError(f"amp must be auto, bf16 or fp32, got {amp!r}")
    if amp == "fp32":
        return None
    if amp == "bf16":
        return torch.bfloat16
    supported = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()
    return torch.bfloat16 if supported else None


def set_threads(threads: int | None) -> None:
    """Torch intra-op threads (at least 1); None keeps torch's choice."""
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory instead of returning it to the kernel after every step.

    By default each large activation buffer is a fresh mmap, zero-filled page by page on first touch: ~290,000
    page faults per cnn5 step here. Raising the mmap and trim thresholds (M_MMAP_THRESHOLD 1 GiB, M_TRIM_THRESHOLD
    2 GiB) reuses the heap instead (measured, cnn5 batch 256 at 32 px, 2 threads: 25,000-31,000 -> 1,400 faults
    and 0.19-0.21 -> 0.17 s per step). Returns False where the C library is not glibc (macOS, musl): nothing
    changes there.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False


def to_float_chw(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (B, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def standardise(x: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) in [0, 1] standardised per channel with :data:`MEAN` and :data:`STD`, channels_last."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W), standardised with ImageNet mean/std, channels_last: what an
    encoder sees without augmentation."""
    return standardise(to_float_chw(images))


def gather_rows(cache: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 rows of the memmap, on ``device``."""
    images = torch.from_numpy(np.ascontiguousarray(np.take(cache, rows, axis=0)))
    return images.to(device, non_blocking=True)


@torch.no_grad()
def encode_rows(
    encoder: nn.Module,
    cache: np.ndarray,
    rows: np.ndarray,
    resolution: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    memory_format=torch.channels_last,
    batch_size: int = 256,
) -> torch.Tensor:
    """(n, D) float32 features of cache ``rows`` (normalised, resized to ``resolution``, no augmentation).

    The caller chooses train/eval mode; this only runs forward passes. Each batch is written into one (n, D)
    tensor: a list of batches joined at the end would hold the output twice (1.2 GB each for 100,000 test photos'
    logits over 3,000 species).
    """
    out = None
    for start in range(0, len(rows), batch_size):
        images = normalise(gather_rows(cache, rows[start : start + batch_size], device))
        if images.shape[-1] != resolution:
            images = F.interpolate(
                images, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
            )
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            batch = encoder(images.contiguous(memory_format=memory_format)).float()
        if out is None:
            out = torch.empty(len(rows), batch.shape[1], dtype=torch.float32, device=device)
        out[start : start + batch.shape[0]] = batch
    if out is None:
        return torch.zeros(0, getattr(encoder, "feature_dim", 0), device=device)
    return out
