"""Concrete input shapes a model runs at: fixed dims kept, symbolic dims searched over common sizes.

Shared by the bridge (example inputs of a torch module) and evaluation (generated inputs for
onnxruntime), so both pick the same sizes; no torch, onnx or onnxruntime import here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

BATCH_EXAMPLE = 2
# Sizes tried for symbolic non-batch dims, smallest first: a detector with five stride-2 stages
# only runs at multiples of 32, and one with anchors baked in only at the size it was made for.
EXAMPLE_SIZES = (16, 32, 64, 128, 224, 256, 320, 416, 512, 640)

Dim = int | str | None
Shape = tuple[int, ...]
T = TypeVar("T")


def is_fixed(dim: Dim) -> bool:
    """A dim the model insists on; converters write -1 or 0 for a free dim, which is not fixed."""
    return isinstance(dim, int) and dim > 0


def concrete_shapes(specs: Sequence[tuple[str, Sequence[Dim]]], batch: int, size: int) -> list[Shape]:
    """Shapes of (input name, dims) specs: a free dim 0 is `batch`, other free dims `size`.

    Dims sharing a symbolic name get one value, so inputs that must agree (tokens and their
    mask) do; an unnamed free dim is its own.
    """
    chosen: dict[str, int] = {}
    shapes = []
    for name, dims in specs:
        shape = []
        for i, dim in enumerate(dims):
            if is_fixed(dim):
                shape.append(int(dim))  # type: ignore[arg-type]
            else:
                key = dim if isinstance(dim, str) and dim else f"{name}:{i}"
                shape.append(chosen.setdefault(key, batch if i == 0 else size))
        shapes.append(tuple(shape))
    return shapes


def has_free_dims(specs: Sequence[tuple[str, Sequence[Dim]]]) -> bool:
    """True when some input dim is not fixed, so more than one size can be tried."""
    return any(not is_fixed(dim) for _, dims in specs for dim in dims)


def first_runnable(
    specs: Sequence[tuple[str, Sequence[Dim]]],
    run: Callable[[list[Shape]], T],
    errors: tuple[type[BaseException], ...],
    *,
    first: tuple[int, int] | None = None,
    batches: Sequence[int] = (BATCH_EXAMPLE, 1),
) -> tuple[int, int, list[Shape], T]:
    """The first (batch, size) whose shapes `run` accepts, its shapes and what `run` returned.

    `first` (a size found before) is tried before the search; only free dims vary, so a model
    with every dim fixed is run once. The first failure is raised when no size runs: it is the
    one at the default size, which tells the user most.
    """
    tries = [first] if first is not None else []
    tries += [(batch, size) for size in EXAMPLE_SIZES for batch in batches] if has_free_dims(specs) else []
    tries = tries or [(batches[0], EXAMPLE_SIZES[0])]
    failure: BaseException | None = None
    tried: set[tuple[Shape, ...]] = set()
    for batch, size in tries:
        shapes = concrete_shapes(specs, batch, size)
        if tuple(shapes) in tried:
            continue  # a fixed batch or fixed spatial dims: this try repeats an earlier one
        tried.add(tuple(shapes))
        try:
            result = run(shapes)
        except errors as error:
            failure = failure or error
            continue
        return batch, size, shapes, result
    assert failure is not None  # every try either returned or failed
    raise failure
