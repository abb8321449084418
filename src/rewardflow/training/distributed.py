"""The accelerate boundary: building the Accelerator and the few collectives the trainer needs.

Under `accelerate launch` or `torchrun`, Accelerator reads the launcher's environment (RANK,
WORLD_SIZE, MASTER_ADDR, ...) and picks NCCL on GPUs, gloo on CPUs. Nothing else in the
library imports accelerate or torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .config import TrainConfig

__all__ = ["DataContext", "broadcast_object", "gather_objects", "make_accelerator", "step_generator"]

_MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def make_accelerator(config: TrainConfig, cpu: bool | None = None):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    if config.precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("precision=fp16 needs a CUDA GPU (use bf16 or fp32 on CPU)")
    # Every parameter takes part in every step (null text and null rewards go through
    # torch.where), so DDP can skip the unused-parameter search.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=False)
    kwargs: dict[str, Any] = {"mixed_precision": _MIXED[config.precision], "kwargs_handlers": [ddp]}
    if cpu is None and not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        cpu = True  # accelerate only takes the multi-process gloo path when told it is on CPU
    if cpu is not None:
        kwargs["cpu"] = cpu
    # accelerate keeps one process-wide state; a second Trainer in the same process (a notebook,
    # a sweep, the tests) may want another precision. The process group (PartialState) is kept.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(**kwargs)


@dataclass
class DataContext:
    """What a data factory needs to build this rank's batch source."""

    config: TrainConfig
    rank: int
    world_size: int
    per_device_batch: int
    device: torch.device
    reward_keys: list[str]


def per_device_batch(config: TrainConfig, world_size: int) -> int:
    """data.batch_size is global per optimizer step; split it over ranks and accumulation."""
    b, accum = config.data.batch_size, config.optim.grad_accumulation
    if b % (world_size * accum):
        raise ValueError(
            f"data.batch_size={b} must be divisible by world_size ({world_size}) x "
            f"optim.grad_accumulation ({accum}); pick a multiple of {world_size * accum}"
        )
    return b // (world_size * accum)


def step_generator(seed: int, step: int, micro: int, device: torch.device) -> torch.Generator:
    """A generator that depends only on (seed, step, micro-step), never on history.

    Noise, times and dropout masks drawn from it are the same on a resumed run and on an
    uninterrupted one, and every rank draws the same global micro-batch and keeps its own
    rows, so K ranks reproduce a 1-rank run of the same global batch.
    """
    key = int(np.random.SeedSequence([seed, step, micro]).generate_state(1, np.uint64)[0]) & (2**63 - 1)
    gen = torch.Generator(device=device)
    gen.manual_seed(key)
    return gen


def gather_objects(accelerator, obj: Any) -> list[Any]:
    """One picklable object per rank -> list on every rank (index = rank). Collective."""
    if accelerator.num_processes == 1:
        return [obj]
    from accelerate.utils import gather_object

    return list(gather_object([obj]))


def broadcast_object(accelerator, obj: Any) -> Any:
    """Rank 0's `obj` on every rank. Collective."""
    if accelerator.num_processes == 1:
        return obj
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj], from_process=0)[0]
