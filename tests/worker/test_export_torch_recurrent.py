"""export.torch on stacked, bidirectional LSTM / GRU models as torch's exporter writes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from engine.contract import StepContext, TechniqueError
from engine.techniques.export import torch as export_torch
from engine.techniques.quantize import dynamic as quantize_dynamic
from service.catalog.export_torch import TorchExportParams
from service.catalog.quantize import DynamicQuantParams
from tests.worker.recurrent_models import write_lstm
from tests.worker.test_bridge_recurrent import SequenceClassifier


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
def test_stacked_bidirectional_models_export_with_a_dynamic_batch(
    kind: type[nn.LSTM] | type[nn.GRU], tmp_path: Path
) -> None:
    """Each layer's zero initial state is a slice of one zero tensor sized from the batch: not traced."""
    torch.manual_seed(0)
    model = SequenceClassifier(kind).eval()
    source = tmp_path / "model.onnx"
    torch.onnx.export(
        model, (torch.zeros(2, 8, 8),), str(source), input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    params = TorchExportParams(timing_budget_s=0.1, batch_sizes=[3])
    outcome = export_torch.run(source, tmp_path / "model.pt2", params, StepContext(workdir=tmp_path))
    assert outcome.metrics["dynamic_dims"] == {"x": [0]}
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    x = torch.randn(5, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x), atol=1e-5, rtol=1e-5)


def test_a_model_the_bridge_cannot_run_is_refused_naming_its_ops(tmp_path: Path) -> None:
    """An int8 LSTM (onnxruntime's com.microsoft DynamicQuantizeLSTM) has no torch module to export."""
    source = write_lstm(tmp_path / "lstm.onnx")
    int8 = tmp_path / "int8.onnx"
    quantize_dynamic.run(source, int8, DynamicQuantParams(), StepContext(workdir=tmp_path / "q"))
    with pytest.raises(TechniqueError) as refused:
        export_torch.run(int8, tmp_path / "out.pt2", TorchExportParams(), StepContext(workdir=tmp_path))
    assert refused.value.problem.slug == "unsupported-ops"
    assert "com.microsoft.DynamicQuantizeLSTM" in refused.value.problem.detail
