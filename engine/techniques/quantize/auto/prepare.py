"""The float model quantize.auto searches on: pre-processed once, every node named, and the winner's copy.

Pre-processing (shape inference, constant folding such as BatchNorm into Conv) runs once here, not in
every trial, so node names are stable: the sensitivity ranking and each trial's `nodes_to_exclude`
name nodes of this one graph.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx

from engine.model_size import file_needs_side_file
from engine.techniques.quantize.preprocess import quantization_preprocess


def prepare(model_path: Path, workdir: Path, preprocess: bool, warnings: list[str]) -> Path:
    """The model after onnxruntime's quantization pre-processing (when asked and possible), nodes named."""
    large = file_needs_side_file(model_path)
    source = model_path
    if preprocess:
        source = quantization_preprocess(
            model_path, workdir / "preprocessed.onnx", large=large, warnings=warnings
        )
    skeleton = onnx.load(str(source), load_external_data=False)
    if all(node.name for node in skeleton.graph.node):
        return source
    taken = {node.name for node in skeleton.graph.node}
    for index, node in enumerate(skeleton.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    # External weights are found relative to the model file, so such a graph stays beside them.
    folder = source.parent if _has_external_data(source) else workdir
    named = folder / f"{source.stem}-named.onnx"
    onnx.save(skeleton, str(named))
    return named


def save_model(source: Path, target: Path) -> None:
    """Copy a candidate to the step's output path, its external weights (if any) moved along."""
    if not _has_external_data(source):
        shutil.copyfile(source, target)
        return
    model = onnx.load(str(source))
    onnx.save(model, str(target), save_as_external_data=True, location=f"{target.name}.data")


def _has_external_data(path: Path) -> bool:
    skeleton = onnx.load(str(path), load_external_data=False)
    return any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in skeleton.graph.initializer)
