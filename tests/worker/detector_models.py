"""Real-shaped detectors and face nets, built like the public ones: YOLOv8 blocks and an MTCNN stage."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """Conv, batch norm and SiLU, as YOLOv8's `Conv`."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        super().__init__(conv, nn.BatchNorm2d(c_out), nn.SiLU())


class Bottleneck(nn.Module):
    """Two 3x3 convs with an optional residual add."""

    def __init__(self, channels: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1, self.cv2 = ConvBlock(channels, channels, 3), ConvBlock(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """YOLOv8's C2f: a conv, a Split in two, bottlenecks on the last part, a Concat of every part, a conv."""

    def __init__(self, c_in: int, c_out: int, blocks: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.c = c_out // 2
        self.cv1 = ConvBlock(c_in, 2 * self.c)
        self.cv2 = ConvBlock((2 + blocks) * self.c, c_out)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(blocks))

        self.halves: nn.ModuleList | None = None

    def unsplit(self) -> None:
        """Compute the two halves with two convs holding cv1's rows, as Torch-Pruning's C2f_v2 does."""
        conv, norm, _ = self.cv1
        halves = []
        for rows in (slice(0, self.c), slice(self.c, 2 * self.c)):
            half = ConvBlock(conv.in_channels, self.c).train(self.training)
            half[0].weight.data = conv.weight.data[rows].clone()
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(half[1], name).data = getattr(norm, name).data[rows].clone()
            halves.append(half)
        self.halves = nn.ModuleList(halves)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.halves is not None:
            y = [half(x) for half in self.halves]
        else:
            y = list(self.cv1(x).split((self.c, self.c), 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling: three chained 5x5 max pools concatenated with their input."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = ConvBlock(c_in, c_in // 2), ConvBlock(c_in * 2, c_out)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        y.extend(self.pool(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    """Distribution focal loss decoding: a softmax over 16 bins and a fixed 1x1 conv taking its mean."""

    def __init__(self, bins: int = 16) -> None:
        super().__init__()
        self.bins = bins
        self.conv = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(bins, dtype=torch.float).view(1, bins, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, anchors = x.shape
        return self.conv(x.view(b, 4, self.bins, anchors).transpose(2, 1).softmax(1)).view(b, 4, anchors)


class Detect(nn.Module):
    """YOLOv8's head: per scale a box and a class branch, concatenated over scales, DFL, boxes decoded."""

    def __init__(self, classes: int, widths: tuple[int, ...], strides: tuple[int, ...]) -> None:
        super().__init__()
        self.classes, self.bins = classes, 16
        box, cls = max(16, widths[0] // 4, 4 * self.bins), max(widths[0], min(classes, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(ConvBlock(w, box, 3), ConvBlock(box, box, 3), nn.Conv2d(box, 4 * self.bins, 1))
            for w in widths
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(ConvBlock(w, cls, 3), ConvBlock(cls, cls, 3), nn.Conv2d(cls, classes, 1))
            for w in widths
        )
        self.dfl = DFL(self.bins)
        self.strides, self.raw = strides, False

    def anchors(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell centres and their strides, from the feature maps' sizes (so any image size works)."""
        points, scales = [], []
        for x, stride in zip(features, self.strides, strict=True):
            h, w = x.shape[2:]
            ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            points.append(torch.stack((xs, ys), -1).view(-1, 2))
            scales.append(torch.full((h * w, 1), float(stride)))
        return torch.cat(points).transpose(0, 1).unsqueeze(0), torch.cat(scales).transpose(0, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        b = features[0].shape[0]
        outs = [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1) for i, x in enumerate(features)]
        if self.raw:
            return outs  # per-scale maps, as YOLOv8 returns while training
        flat = torch.cat([o.view(b, 4 * self.bins + self.classes, -1) for o in outs], 2)
        box, cls = flat.split((4 * self.bins, self.classes), 1)
        lt, rb = self.dfl(box).chunk(2, 1)
        anchors, strides = self.anchors(features)
        centre, size = anchors + (rb - lt) / 2, rb + lt
        return torch.cat((torch.cat((centre, size), 1) * strides, cls.sigmoid()), 1)


class TinyYOLOv8(nn.Module):
    """A YOLOv8n-shaped detector (backbone with C2f and SPPF, a PAN neck, a three-scale Detect head)."""

    def __init__(self, classes: int = 3, w: int = 8) -> None:
        super().__init__()
        self.backbone = nn.ModuleList(
            [
                ConvBlock(3, w, 3, 2),
                ConvBlock(w, 2 * w, 3, 2),
                C2f(2 * w, 2 * w, 1, True),
                ConvBlock(2 * w, 4 * w, 3, 2),
                C2f(4 * w, 4 * w, 2, True),
                ConvBlock(4 * w, 8 * w, 3, 2),
                C2f(8 * w, 8 * w, 2, True),
                ConvBlock(8 * w, 8 * w, 3, 2),
                C2f(8 * w, 8 * w, 1, True),
                SPPF(8 * w, 8 * w),
            ]
        )
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n1, self.n2 = C2f(16 * w, 8 * w), C2f(12 * w, 4 * w)
        self.d1, self.n3 = ConvBlock(4 * w, 4 * w, 3, 2), C2f(12 * w, 8 * w)
        self.d2, self.n4 = ConvBlock(8 * w, 8 * w, 3, 2), C2f(16 * w, 8 * w)
        self.detect = Detect(classes, (4 * w, 8 * w, 8 * w), (8, 16, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved = {}
        for index, layer in enumerate(self.backbone):
            x = layer(x)
            saved[index] = x
        p4 = self.n1(torch.cat((self.up(x), saved[6]), 1))
        p3 = self.n2(torch.cat((self.up(p4), saved[4]), 1))
        p4 = self.n3(torch.cat((self.d1(p3), p4), 1))
        p5 = self.n4(torch.cat((self.d2(p4), x), 1))
        return self.detect([p3, p4, p5])


class MTCNNStage(nn.Module):
    """An MTCNN R-net-shaped face stage: convs with per-channel PReLU, a face score softmax and a box.

    `channels_last` flattens as facenet-pytorch does (permute to N, W, H, C, then view), which
    interleaves the channels in the dense layer's input.
    """

    def __init__(self, channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.features = nn.Sequential(
            nn.Conv2d(3, 28, 3), nn.PReLU(28), nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(28, 48, 3), nn.PReLU(48), nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(48, 64, 2), nn.PReLU(64),
        )  # fmt: skip
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(64 * 3 * 3, 128), nn.PReLU(128))
        self.score, self.box = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(x)
        if self.channels_last:
            x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.dense(x)
        return torch.softmax(self.score(x), 1), self.box(x)


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with varied statistics, as a trained model has, so channels differ in importance."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            count = module.num_features
            module.weight.data = torch.rand(count, generator=generator) + 0.5
            module.bias.data = torch.randn(count, generator=generator) * 0.1
            module.running_mean.data = torch.randn(count, generator=generator) * 0.1
            module.running_var.data = torch.rand(count, generator=generator) + 0.5
        if isinstance(module, nn.PReLU):
            module.weight.data = torch.rand(module.weight.shape, generator=generator) * 0.5
    return model.eval()


def export(
    model: nn.Module,
    shape: tuple[int, ...],
    path: Path,
    outputs: list[str],
    dynamic: dict[int, str] | None = None,
) -> Path:
    """ONNX with batch norms folded and fixed dims, as detector exports are; `dynamic` names symbolic ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (torch.zeros(shape),),
            str(path),
            input_names=["images"],
            output_names=outputs,
            dynamic_axes={"images": dynamic} if dynamic else None,
            opset_version=17,
            dynamo=False,
        )
    return path
