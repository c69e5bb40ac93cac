"""Write a small trained model and a labelled dataset to try the service with (`make example`)."""

from __future__ import annotations

from pathlib import Path

from tests import model_zoo


def main() -> None:
    """Train the digits CNN for a few seconds; write model.onnx and eval.npz here."""
    # Seeded and on one thread: the same weights on every run, and quick on a busy machine.
    model = model_zoo.trained(model_zoo.DigitsCNN, epochs=10)
    model_zoo.export_onnx(model, Path("model.onnx"))
    model_zoo.write_dataset(Path("eval.npz"))
    print(f"model.onnx (top-1 {model_zoo.accuracy(model):.3f} on the test split) and eval.npz written")  # noqa: T201


if __name__ == "__main__":
    main()
