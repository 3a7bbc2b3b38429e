"""Several GPUs in one pretraining job: data parallelism over the processes that torchrun starts, one per GPU.

The workflow's pretrain rule runs ``torchrun --nproc_per_node <pretrain.gpus> -m geocontrast.train ...`` when
``pretrain.gpus`` > 1; torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
Every process then runs the same training loop on the same seed, so the anchor order and every pair draw are
identical on all of them: each draws the whole global batch, keeps its contiguous share (:meth:`Ranks.share`) and
encodes only that. Gradients are averaged by DistributedDataParallel over encoder and heads (BatchNorm synchronised
on CUDA), and :class:`~geocontrast.losses.NTXentLoss` gathers the other processes' views as negatives
(:func:`gather_with_gradients`), so a step's loss and gradients are those of one process on the same global batch
of views (on CPU, where SyncBatchNorm does not run, each process normalises with its own batch statistics). Each
process augments its share with its own random stream. Only rank 0 writes metrics.jsonl, last.pt and encoder.pt.

Without torchrun (WORLD_SIZE unset or 1) every method is the identity: the plain single-process run.

The losses (one layer below the strategies) and the training loop (above them) both use this module, so it
imports nothing else of the package.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes: ``rank`` of ``world_size``, on ``device``."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0, the one process that writes the outputs."""
        return self.rank == 0

    def threads(self, job_threads: int) -> int:
        """Torch intra-op threads of this process: the job's threads shared by the processes on this node."""
        return max(1, job_threads // int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size)))

    def batch_size(self, requested: int) -> int:
        """The global batch size used: ``requested`` rounded down to a multiple of ``world_size``, so every
        process gets an equal share (gathering needs equal sizes)."""
        size = requested - requested % self.world_size
        if size < 1:
            raise ValueError(
                f"batch of {requested} anchors cannot be shared by {self.world_size} processes; "
                f"raise pretrain.batch_size or lower pretrain.gpus"
            )
        return size

    def augment_seed(self, seed: int) -> int:
        """Seed of this process's augmentations: distinct per rank (its images differ from the others'), the
        single-process seed itself on one process."""
        return seed * self.world_size + self.rank

    def share(self, batch):
        """This process's contiguous share of a batch record (a dataclass such as
        :class:`~geocontrast.strategies.base.PairBatch`): rank r keeps items r*b ... r*b + b - 1 (b = n /
        world_size) of every array field and of every array in a dict field; None stays None. Masks keep all
        their columns: they index the global batch that :class:`~geocontrast.losses.NTXentLoss` gathers, so the
        masked loss is the single-process one."""
        if self.world_size == 1:
            return batch

        def part(name: str, values):
            if values is None:
                return None
            if isinstance(values, dict):
                return {key: part(f"{name} {key!r}", value) for key, value in values.items()}
            if len(values) % self.world_size:
                raise ValueError(f"batch {name} has {len(values)} rows, not divisible by {self.world_size} processes")
            size = len(values) // self.world_size
            return values[self.rank * size : (self.rank + 1) * size]  # (b, ...)

        shares = {field.name: part(field.name, getattr(batch, field.name)) for field in dataclasses.fields(batch)}
        return dataclasses.replace(batch, **shares)

    def replicate(self, model: nn.ModuleDict) -> nn.Module:
        """The callable that encodes a batch: ``model["encoder"]``, or, across processes, a DistributedDataParallel
        module holding encoder and heads, so the gradients of both are averaged (the heads run in the strategy's
        loss, after the forward pass; their parameters are registered here all the same)."""
        if self.world_size == 1:
            return model["encoder"]
        if self.device.type == "cuda":  # SyncBatchNorm runs on GPUs only; on CPU every process keeps its own stats
            nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces the BatchNorm layers in place
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(_Replica(model), device_ids=device_ids)

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the processes (every process must call it, at the same step)."""
        if self.world_size == 1:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size


class _Replica(nn.Module):
    """Encoder and heads under one module, whose forward is the encoder's (DistributedDataParallel wraps one
    module)."""

    def __init__(self, model: nn.ModuleDict) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model["encoder"](images)  # (N, D)


class _AllGather(torch.autograd.Function):
    """all_gather whose backward hands each process the gradient of its own rows summed over every process's loss
    (all-reduce, then this rank's slice), so gradients reach the process that computed the rows."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        gathered = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, rows.contiguous())
        return torch.cat(gathered)  # (world_size * n, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()  # (world_size * n, ...)
        dist.all_reduce(grad)
        n = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * n : (dist.get_rank() + 1) * n]  # (n, ...)


def gather_with_gradients(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(every process's ``rows`` concatenated in rank order, the index of this process's first row in them);
    ``rows`` itself and 0 without a process group of several processes. Every process passes the same shape."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return rows, 0
    return _AllGather.apply(rows), dist.get_rank() * rows.shape[0]


def join(device: torch.device) -> Ranks:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) when it started more than one process; this
    process's GPU is cuda:LOCAL_RANK. A run without torchrun is rank 0 of 1 on ``device``."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        return Ranks(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), device)


def leave() -> None:
    """Leave the process group :func:`join` joined, if any (at the end of the training entry point)."""
    if dist.is_initialized():
        dist.destroy_process_group()
