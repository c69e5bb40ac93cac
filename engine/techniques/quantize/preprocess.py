"""onnxruntime's quantization pre-processing, shared by every int8 technique."""

from __future__ import annotations

from contextlib import chdir
from pathlib import Path

from engine.errortext import brief


def quantization_preprocess(model_path: Path, target: Path, *, large: bool, warnings: list[str]) -> Path:
    """Shape inference and graph optimization (e.g. BatchNorm folded into Conv) so more nodes quantize.

    Returns `target`, or `model_path` itself with a warning when pre-processing fails.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    failure = ""
    source, written = model_path.resolve(), target.resolve()
    # Symbolic shape inference asserts on some exported graphs (e.g. a Reshape fed by computed
    # shapes); ONNX's own shape inference and the graph optimizations still help without it.
    for skip_symbolic in (False, True):
        try:
            # When symbolic inference gives up, onnxruntime dumps its half-inferred graph (and
            # uuid-named weight files) into the working directory: keep that in the step's folder.
            with chdir(written.parent):
                quant_pre_process(
                    str(source),
                    str(written),
                    skip_symbolic_shape=skip_symbolic,
                    save_as_external_data=large,
                )
        except Exception as exc:  # the tool raises bare assertions and arbitrary errors on odd graphs
            failure = brief(exc)
            continue
        _flatten_gemm_biases(target)
        return target
    warnings.append(
        f"pre-processing (shape inference and graph optimization) failed and was skipped: {failure}; "
        "quantized the model as uploaded"
    )
    return model_path


def _flatten_gemm_biases(path: Path) -> None:
    """Gemm biases of shape [1, N] become [N], which broadcasts the same.

    The pre-processing fuses MatMul + Add into Gemm keeping the Add's [1, N] constant (magika's
    classifier head), and onnxruntime's per-channel bias check then fails on the 2-D bias with
    "The truth value of an array with more than one element is ambiguous". Only the dims change:
    the bytes (inline or in a side file) are the same.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    readers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    biases = {node.input[2] for node in model.graph.node if node.op_type == "Gemm" and len(node.input) > 2}
    flattened = set()
    for tensor in model.graph.initializer:
        if tensor.name in biases and readers.get(tensor.name) == {"Gemm"} and len(tensor.dims) == 2:
            if tensor.dims[0] == 1:
                tensor.dims[:] = [tensor.dims[1]]
                flattened.add(tensor.name)
    # An older graph may also list the initializer among its inputs, with the old shape.
    for value in [*model.graph.input, *model.graph.value_info]:
        if value.name in flattened and value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 2:
                del dims[0]
    if flattened:
        onnx.save(model, str(path))
