"""The sandbox child's own folder: empty at the start, holding only the inputs it is given.

Boxes live in a per-process folder of the temporary directory (mode 0711: passable, not listable),
never inside the service's data home or a job's folder. Layout:

    box/spec.json   what to run (the worker writes it, the child reads it)
    box/in/         the step's input files, hard-linked or copied in, read-only to the child
    box/work/       the child's working directory: the only place it may write
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

_boxes_root: Path | None = None


def _root() -> Path:
    global _boxes_root
    if _boxes_root is None or not _boxes_root.is_dir():
        _boxes_root = Path(tempfile.mkdtemp(prefix="modelpress-sandbox-"))
        _boxes_root.chmod(0o711)
        atexit.register(shutil.rmtree, _boxes_root, True)
    return _boxes_root


class Box:
    """A fresh box; `user` is the (uid, gid) the child will run as, or None for the worker's own."""

    def __init__(self, user: tuple[int, int] | None = None) -> None:
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="box-", dir=_root())).resolve()
        self.inputs = self.root / "in"
        self.work = self.root / "work"
        self.inputs.mkdir(mode=0o755)
        (self.work / "tmp").mkdir(parents=True, mode=0o700)
        if user is not None:
            self.root.chmod(0o711)
            for folder in (self.work, self.work / "tmp"):
                os.chown(folder, *user)

    def admit(self, source: Path, name: str) -> str:
        """Make an input file readable to the child (a hard link where possible); its path in the box.

        `name` may hold a subfolder; an ONNX model's `<name>.data` external-data file comes along.
        """
        destination = self.inputs / name
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        for origin, target in ((source, destination), (_data_of(source), _data_of(destination))):
            if origin == source or origin.is_file():
                _link_or_copy(origin, target)
        return str(destination)

    def output(self, name: str) -> str:
        """A path in the child's writable folder, for a file the worker collects afterwards."""
        return str(self.work / name)

    def close(self) -> None:
        """Remove the box and whatever the child left in it."""
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Box:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _data_of(model: Path) -> Path:
    return model.with_name(model.name + ".data")


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)
    # A link shares the job folder's inode, but that folder stays private to the worker's user.
    destination.chmod(0o644)
