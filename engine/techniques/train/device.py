"""Where training runs: the GPU when this worker sees one (CUDA_VISIBLE_DEVICES picks it), else the CPU.

Training steps are routed to the gpu queue while a GPU worker is alive (service/workers/capability.py);
the same loop then runs there, with the models, the data and the optimizer's state on the device,
and everything goes back to the CPU for the export. Written for torch 2.x's CUDA API; NOT RUN on
this project's CPU machines (tests/gpu/test_gpu_pool.py runs it where a GPU exists).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def training_device() -> torch.device:
    """The first visible GPU, or the CPU where there is none (a CPU build of torch has none)."""
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _move(
    modules: Iterable[torch.nn.Module], extra: Iterable[torch.nn.Parameter], device: torch.device
) -> None:
    for module in modules:
        module.to(device)
    for parameter in extra:
        # In place, so that the module owning it (a distillation adapter) sees the moved tensor.
        parameter.data = parameter.data.to(device)


@contextmanager
def on_device(
    device: torch.device, modules: Iterable[torch.nn.Module], extra: Iterable[torch.nn.Parameter] = ()
) -> Iterator[None]:
    """The modules (and extra parameters) on `device` inside the block, back on the CPU after it."""
    import torch

    modules, extra = list(modules), list(extra)
    if device.type == "cpu":
        yield
        return
    _move(modules, extra, device)
    try:
        yield
    finally:
        _move(modules, extra, torch.device("cpu"))
