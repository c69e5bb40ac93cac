"""The hostile upload corpus: each file and where, and with which problem type, it must be refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper

from tests.security.hostile import (
    Hostile,
    canary_pickle,
    object_npz,
    pt2_with,
    single_node_model,
    with_external_location,
    zip_bomb,
    zip_of,
)


def corpus(canary_dir: Path, onnx_bytes: bytes, pt2_bytes: bytes, max_upload: int) -> list[Hostile]:
    """Every hostile file; each pickle aims at its own canary file in `canary_dir`."""

    def evil(tag: str, protocol: int = 4) -> bytes:
        return canary_pickle(canary_dir / tag, protocol)

    def external(location: str, files: dict[str, bytes] | None = None) -> bytes:
        return zip_of({"model/model.onnx": with_external_location(onnx_bytes, location), **(files or {})})

    torchscript_lookalike = {  # protocol 2, the one TorchScript's own unpickler reads
        "archive/data.pkl": evil("ts-data", 2),
        "archive/constants.pkl": evil("ts-constants", 2),
        "archive/code/__torch__.py": b"def forward(self, x):\n    return x\n",
        "archive/version": b"3\n",
    }
    up, ingest = "upload", "ingest"
    unsupported, unsafe = "unsupported-format", "unsafe-model"
    return [
        Hostile("pickle-protocol-2.pt", evil("p2", 2), up, unsupported, 415),
        Hostile("pickle-protocol-5.pth", evil("p5", 5), up, unsupported, 415),
        Hostile("pickle-named.onnx", evil("onnx-ext"), up, unsupported, 415),
        Hostile("pickle-protocol-0.pt", evil("p0", 0), ingest, unsupported),
        Hostile(
            "torch-save-checkpoint.pt",
            zip_of({"archive/data.pkl": evil("ckpt"), "archive/version": b"3\n"}),
            ingest,
            unsupported,
        ),  # fmt: skip
        Hostile("torchscript-lookalike.pt", zip_of(torchscript_lookalike), ingest, "invalid-model"),
        Hostile("torchscript-lookalike.onnx", zip_of(torchscript_lookalike), ingest, "invalid-model"),
        Hostile("pt2-with-data-pkl.pt2", pt2_with(pt2_bytes, {"data.pkl": evil("pt2-data")}), ingest, unsafe),
        Hostile(
            "pt2-custom-object.pt2",
            pt2_with(pt2_bytes, {"data/constants/custom_obj_0": evil("pt2-obj")}),
            ingest,
            unsafe,
        ),  # fmt: skip
        Hostile(
            "pt2-aotinductor.pt2",
            pt2_with(pt2_bytes, {"data/aotinductor/model/model.so": b"\x7fELF"}),
            ingest,
            unsafe,
        ),  # fmt: skip
        Hostile("zip-bomb.zip", zip_bomb(onnx_bytes), ingest, unsafe),
        Hostile(
            "many-entries.zip",
            zip_of({"model.onnx": onnx_bytes, **{f"w{i}.bin": b"x" for i in range(1001)}}),
            ingest,
            unsafe,
        ),  # fmt: skip
        Hostile("external-dotdot.zip", external("../secret.bin"), ingest, unsafe),
        Hostile(
            "external-nested-dotdot.zip",
            external("data/../../secret.bin", {"model/data/w.bin": b"x"}),
            ingest,
            unsafe,
        ),  # fmt: skip
        Hostile("external-absolute.zip", external("/etc/passwd"), ingest, unsafe),
        Hostile("external-windows-drive.zip", external("C:\\weights.bin"), ingest, unsafe),
        Hostile(
            "external-symlink.zip",
            zip_of(
                {"model/model.onnx": with_external_location(onnx_bytes, "w.bin")},
                {"model/w.bin": "/etc/passwd"},
            ),
            ingest,
            unsafe,
        ),  # fmt: skip
        Hostile("external-from-bare-file.onnx", with_external_location(onnx_bytes, "w.bin"), ingest, unsafe),
        Hostile(
            "member-dotdot.zip", zip_of({"model.onnx": onnx_bytes, "../escape.bin": b"x"}), ingest, unsafe
        ),
        Hostile(
            "ep-context.onnx",
            single_node_model(
                helper.make_node("EPContext", ["x"], ["y"], domain="com.microsoft", embed_mode=1),
                "com.microsoft",
            ),
            ingest,
            unsafe,
        ),  # fmt: skip
        Hostile(
            "custom-op.onnx",
            single_node_model(helper.make_node("Evil", ["x"], ["y"], domain="com.evil"), "com.evil"),
            ingest,
            unsafe,
        ),  # fmt: skip
        Hostile("engine.plan", b"\x00\x00\x00\x00ftrt" + bytes(4096), up, unsupported, 415),
        Hostile("engine-named.onnx", b"ftrt" + bytes(4096), up, unsupported, 415),
        Hostile("custom-op.so", b"\x7fELF\x02\x01\x01" + bytes(4096), up, unsupported, 415),
        Hostile("windows.dll", b"MZ\x90\x00" + bytes(4096), up, unsupported, 415),
        Hostile("pickle.pt.gz", b"\x1f\x8b\x08\x00" + bytes(64), up, unsupported, 415),
        Hostile("oversized.onnx", onnx_bytes[:2] + bytes(max_upload), up, "payload-too-large", 413),
        Hostile("truncated.onnx", onnx_bytes[: len(onnx_bytes) // 2], ingest, unsupported),
        Hostile("truncated.pt2", pt2_bytes[: len(pt2_bytes) // 2], ingest, unsupported),
        Hostile("random-bytes.onnx", np.random.default_rng(7).bytes(8192), ingest, unsupported),
        Hostile("object-array.npz", object_npz(canary_dir / "npz"), up, "invalid-dataset", 422, "datasets"),
    ]
