"""DistributedDataParallel when started by torchrun (RANK/WORLD_SIZE in the environment)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def setup() -> tuple[int, int]:
    """(rank, world_size); initialises the process group under torchrun (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def device_for_rank(device: torch.device, rank: int) -> torch.device:
    """One GPU per process under torchrun (LOCAL_RANK)."""
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def needs_unused_parameter_search(model: torch.nn.Module) -> bool:
    """Whether some parameters get no gradient at some steps, so DDP must look for them every step.

    A model class says so with ``ddp_find_unused_parameters`` (KECAE, which switches its
    discriminator out of the objective by step: a frozen discriminator is only judged through
    detached weights). The search costs a graph traversal per step, so other models go without it.
    """
    return bool(model.ddp_find_unused_parameters)


def wrap(module: torch.nn.Module, device: torch.device,
         find_unused_parameters: bool = False) -> DistributedDataParallel:
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)
