"""Several training processes (torchrun + DistributedDataParallel): gloo on CPU, NCCL on GPU.

A stage asks for `train.processes` > 1; `relaunch_under_torchrun` then replaces the stage's own
process by torchrun running the same command, so the command in dvc.yaml never changes. Every
rank sees the same global batch order and latents and works on its slice of them; gradients
are averaged by DDP, so the result matches one process with the same global batch.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def part(self, global_batch: int) -> slice:
        """This rank's slice of a global batch (sizes are checked to divide evenly)."""
        local = global_batch // self.size
        return slice(self.rank * local, (self.rank + 1) * local)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average numbers over ranks (for losses that every rank computed on its slice)."""
        if not self.active or not values:
            return values
        tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return dict(zip(values, (tensor / self.size).tolist()))

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on one (a stop request must stop all at once)."""
        if not self.active:
            return flag
        tensor = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch_under_torchrun(processes: int, module: str) -> None:
    """Replace this process by `torchrun --nproc-per-node processes -m module <same args>`.

    Started as `python -m module`, every argument is the module's; started through the `fpa`
    CLI (`fpa train ...`), the first one is the subcommand, which the module does not take.
    """
    own_file = Path(sys.argv[0]).resolve().with_suffix("").parts[-2:] == tuple(module.split("."))
    args = sys.argv[1:] if own_file else sys.argv[2:]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={processes}", "-m", module, *args,
    ]  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def init_world(device: torch.device) -> World:
    """Join the process group torchrun set up (or return a world of one)."""
    if not under_torchrun():
        return World(device=device)
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(rank=rank, size=size, device=device)
