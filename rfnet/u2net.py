"""U^2-Net (Qin et al., Pattern Recognition 2020), the salience model of the paper.

Written from the paper's description with the module and parameter names of the authors'
release, so that their published ``u2net.pth`` (full, 176 MB) and ``u2netp.pth`` (small,
4.7 MB) load with ``strict=True``. Weights are never downloaded here: pass the file.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class REBNCONV(nn.Module):
    """3x3 convolution (dilated), batch norm, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dirate: int = 1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


def _up(x, like):
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """Residual U-block of ``height`` levels (RSU-7 ... RSU-4): an encoder of pooled REBNCONVs,
    a dilated bottom, a decoder that upsamples and concatenates, plus the input residual."""

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.height = height
        self.rebnconvin = REBNCONV(in_ch, out_ch, 1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, 1)
        for i in range(2, height):
            setattr(self, f"pool{i - 1}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
            setattr(self, f"rebnconv{i}", REBNCONV(mid_ch, mid_ch, 1))
        setattr(self, f"rebnconv{height}", REBNCONV(mid_ch, mid_ch, 2))
        for i in range(height - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(mid_ch * 2, mid_ch, 1))
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, 1)

    def forward(self, x):
        hxin = self.rebnconvin(x)
        enc = [self.rebnconv1(hxin)]
        for i in range(2, self.height):
            enc.append(getattr(self, f"rebnconv{i}")(getattr(self, f"pool{i - 1}")(enc[-1])))
        hx = getattr(self, f"rebnconv{self.height}")(enc[-1])
        for i in range(self.height - 1, 0, -1):
            hx = getattr(self, f"rebnconv{i}d")(torch.cat((hx, enc[i - 1]), 1))
            if i > 1:
                hx = _up(hx, enc[i - 2])
        return hx + hxin


class RSU4F(nn.Module):
    """RSU-4F: dilations instead of pooling, for the low-resolution stages."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, 1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, 1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, 2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, 4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, 8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, 4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, 2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, 1)

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        return self.rebnconv1d(torch.cat((hx2d, hx1), 1)) + hxin


# (stage: (block height or "F", in, mid, out)) for the two published variants.
_STAGES = {
    "u2net": {
        "stage1": (7, 3, 32, 64), "stage2": (6, 64, 32, 128), "stage3": (5, 128, 64, 256),
        "stage4": (4, 256, 128, 512), "stage5": ("F", 512, 256, 512), "stage6": ("F", 512, 256, 512),
        "stage5d": ("F", 1024, 256, 512), "stage4d": (4, 1024, 128, 256),
        "stage3d": (5, 512, 64, 128), "stage2d": (6, 256, 32, 64), "stage1d": (7, 128, 16, 64),
    },
    "u2netp": {
        "stage1": (7, 3, 16, 64), "stage2": (6, 64, 16, 64), "stage3": (5, 64, 16, 64),
        "stage4": (4, 64, 16, 64), "stage5": ("F", 64, 16, 64), "stage6": ("F", 64, 16, 64),
        "stage5d": ("F", 128, 16, 64), "stage4d": (4, 128, 16, 64),
        "stage3d": (5, 128, 16, 64), "stage2d": (6, 128, 16, 64), "stage1d": (7, 128, 16, 64),
    },
}


class U2Net(nn.Module):
    """Six encoder stages, five decoder stages, a side output per decoder level and their
    fusion. ``forward`` returns the fused salience map in 0..1 (sigmoid), shape (B, 1, H, W)."""

    def __init__(self, variant: str = "u2net", in_ch: int = 3, out_ch: int = 1):
        super().__init__()
        if variant not in _STAGES:
            raise ValueError(f"unknown U2-Net variant {variant!r}; use u2net or u2netp")
        self.variant = variant
        for name, (h, i, m, o) in _STAGES[variant].items():
            i = in_ch if name == "stage1" else i
            setattr(self, name, RSU4F(i, m, o) if h == "F" else RSU(h, i, m, o))
        for k in range(1, 6):
            setattr(self, f"pool{k}{k + 1}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
        side_in = [_STAGES[variant][s][3] for s in ("stage1d", "stage2d", "stage3d", "stage4d", "stage5d", "stage6")]
        for k, c in enumerate(side_in, 1):
            setattr(self, f"side{k}", nn.Conv2d(c, out_ch, 3, padding=1))
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward_all(self, x):
        """Fused map and the six side maps, as logits."""
        e1 = self.stage1(x)
        e2 = self.stage2(self.pool12(e1))
        e3 = self.stage3(self.pool23(e2))
        e4 = self.stage4(self.pool34(e3))
        e5 = self.stage5(self.pool45(e4))
        e6 = self.stage6(self.pool56(e5))
        d5 = self.stage5d(torch.cat((_up(e6, e5), e5), 1))
        d4 = self.stage4d(torch.cat((_up(d5, e4), e4), 1))
        d3 = self.stage3d(torch.cat((_up(d4, e3), e3), 1))
        d2 = self.stage2d(torch.cat((_up(d3, e2), e2), 1))
        d1 = self.stage1d(torch.cat((_up(d2, e1), e1), 1))
        sides = [self.side1(d1)] + [
            _up(getattr(self, f"side{k}")(d), d1) for k, d in zip(range(2, 7), (d2, d3, d4, d5, e6))
        ]
        return self.outconv(torch.cat(sides, 1)), sides

    def forward(self, x):
        return torch.sigmoid(self.forward_all(x)[0])
