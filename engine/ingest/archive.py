"""Zip archives from users: every member checked before anything is read, then bounded extraction.

CPython's zipfile does not check a member's announced size against what it inflates to, so the
caps are enforced on the bytes actually written, not only on the central directory's claims.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from engine.contract import TechniqueError
from engine.errortext import brief
from service.errors import UnsupportedFormat
from service.failures import UnsafeModel

MAX_ENTRIES = 1000
MAX_TOTAL_BYTES = 8 * 1024**3
MAX_RATIO = 100
# Tiny members (an all-zero bias) legitimately compress beyond 100:1; bombs need size to hurt.
RATIO_FLOOR_BYTES = 64 * 1024
_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


def check_archive(path: Path, *, max_entries: int = MAX_ENTRIES) -> list[zipfile.ZipInfo]:
    """The archive's file members after checking names, kinds, counts, sizes and expansion ratios."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise TechniqueError(
            UnsupportedFormat, f"the zip archive is truncated or corrupt ({brief(error)})"
        ) from None
    if len(members) > max_entries:
        raise _unsafe(f"the archive has {len(members)} entries; at most {max_entries} are allowed")
    seen: set[str] = set()
    total = 0
    files = []
    for member in members:
        name = safe_member_name(member.filename)
        if name in seen:
            raise _unsafe(f"the archive has two entries named {member.filename!r}")
        seen.add(name)
        _check_kind(member)
        if member.is_dir():
            continue
        total += member.file_size
        if total > MAX_TOTAL_BYTES:
            raise _unsafe(f"the archive expands to more than {MAX_TOTAL_BYTES // 1024**3} GiB")
        if member.file_size > RATIO_FLOOR_BYTES and member.file_size > MAX_RATIO * max(
            member.compress_size, 1
        ):
            raise _unsafe(
                f"member {member.filename!r} expands {member.file_size // max(member.compress_size, 1)}:1;"
                f" at most {MAX_RATIO}:1 is allowed"
            )
        files.append(member)
    return files


def extract_archive(path: Path, destination: Path) -> list[Path]:
    """Check the archive, then extract its files under `destination`; returns the written paths."""
    members = check_archive(path)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    written = []
    with zipfile.ZipFile(path) as archive:
        for member in members:
            target = root.joinpath(*PurePosixPath(safe_member_name(member.filename)).parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.parent.resolve().is_relative_to(root):
                    raise _unsafe(f"member {member.filename!r} would be written outside the archive")
                _copy_bounded(archive, member, target)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise TechniqueError(
                    UnsupportedFormat, f"archive member {member.filename!r} is corrupt ({brief(error)})"
                ) from None
            except OSError as error:
                raise _unsafe(
                    f"archive member {member.filename!r} cannot be extracted ({brief(error)})"
                ) from None
            written.append(target)
    return written


def safe_member_name(name: str) -> str:
    """The member's normalized relative path, or `unsafe-model` when it could escape the archive."""
    if not name or "\x00" in name or "\\" in name or _DRIVE.match(name) or name.startswith("/"):
        raise _unsafe(f"archive member {name!r} has an absolute or non-portable path")
    parts = [part for part in PurePosixPath(name).parts if part != "."]
    if ".." in parts or not parts:
        raise _unsafe(f"archive member {name!r} points outside the archive")
    return "/".join(parts)


def _check_kind(member: zipfile.ZipInfo) -> None:
    if member.flag_bits & 0x1:
        raise _unsafe(f"archive member {member.filename!r} is encrypted")
    file_type = stat.S_IFMT(member.external_attr >> 16)
    # Many writers (Windows tools, Python's writestr) store no file type: those are plain files.
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        what = "a symbolic link" if file_type == stat.S_IFLNK else "not a regular file"
        raise _unsafe(f"archive member {member.filename!r} is {what}")


def _copy_bounded(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    with archive.open(member) as source, os.fdopen(os.open(target, flags, 0o600), "wb") as sink:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > member.file_size:
                raise _unsafe(f"member {member.filename!r} expands beyond the size the archive declares")
            sink.write(chunk)


def _unsafe(detail: str) -> TechniqueError:
    return TechniqueError(UnsafeModel, detail)
