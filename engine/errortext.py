"""Library error text made safe to show a client: no server paths, nothing a model read.

The full text still reaches the worker's log (the sandbox child prints it; the worker logs the
child's output when a step fails); only these summaries go into problem documents.
"""

from __future__ import annotations

import re

_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:/[^\s'\"()\[\]<>:,;]+)+")
_OPERATOR = re.compile(r"\b(?:aten|prim|quantized|onnx)::[A-Za-z_][\w.]*")
_LIMIT = 160


def brief(error: BaseException) -> str:
    """A parser's complaint about a file's structure: the type and first line, paths removed.

    For onnx, protobuf, zip and onnxruntime messages about the uploaded bytes, which describe
    the upload itself; never for text raised while a model's own code ran (see `summary`).
    """
    lines = str(error).strip().splitlines()
    text = _ABSOLUTE_PATH.sub("<path>", lines[0] if lines else "")
    text = "".join(char for char in text if char.isprintable() and char.isascii())[:_LIMIT]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def summary(error: BaseException) -> str:
    """An error raised while model code ran: only its type and the real operators it names.

    A model's code chooses its own error messages, and may put in them whatever it read; so
    nothing of the message is echoed except operator names that torch itself has registered.
    """
    return type(error).__name__ + _operators_note(str(error))


def _operators_note(message: str) -> str:
    names = sorted({name for name in _OPERATOR.findall(message) if _is_registered(name)})[:5]
    return f" (operators: {', '.join(names)})" if names else ""


def _is_registered(name: str) -> bool:
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch._C._jit_get_schemas_for_operator(name))
    except RuntimeError:
        return False


def log_text(text: str, limit: int = 500) -> str:
    """A log line's text for clients: one line, printable ASCII, absolute paths replaced, bounded."""
    flat = " ".join(_ABSOLUTE_PATH.sub("<path>", text).split())
    return "".join(char for char in flat if char.isprintable() and char.isascii())[:limit]


# What torch's, oneDNN's and onnxruntime's allocators say when an allocation fails (the sandbox's
# address-space limit makes them fail instead of the kernel killing the process). oneDNN reports a
# failed scratch-pad allocation only as "could not create a primitive" (seen training PP-OCRv4's
# recognizer under the 8 GiB limit).
_OUT_OF_MEMORY = (
    "can't allocate memory",
    "DefaultCPUAllocator",
    "bad_alloc",
    "Failed to allocate memory",
    "could not create a primitive",
)


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation failure (MemoryError, or a library's allocator refusing)."""
    if isinstance(error, MemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and any(mark in message for mark in _OUT_OF_MEMORY)
