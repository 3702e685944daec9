"""Reference counts and key layouts for the zoo-III families (tests/test_zoo3.py), run once, never in CI.

For each reference model (torchvision / timm, built with random weights): its parameter count (train form, every
``nn.Parameter``), its MACs at our input size (torch's FlopCounterMode total ÷ 2 on the model in eval mode,
batch 1: the convention of exporter/profile.py) and its state_dict (key, shape) listing. Written to
tests/fixtures/zoo3_refs.json; no weights are stored.

    REPOS=DIR /tmp/peer-venv/bin/python scripts/make_zoo3_refs.py [MODEL ...]   # peer venv of make_golden.py

DIR holds ShuffleNet-Series/ShuffleNetV1 (git archive of megvii-model/ShuffleNet-Series@aa91feb7, MIT).

Recorded with torch 2.14.1, torchvision 0.29.1, timm 1.0.31 (CPU).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPOS = Path(os.environ.get("REPOS", "/tmp/zoo3repos"))  # reference repositories that are not packages
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "zoo3_refs.json"


def _tv(name):
    import torchvision

    return lambda: getattr(torchvision.models, name)(weights=None), f"torchvision {torchvision.__version__} {name}"


def _timm(name):
    import timm

    return lambda: timm.create_model(name, pretrained=False), f"timm {timm.__version__} {name}"


def _timm_mnv1(mult):
    import timm
    from timm.models import efficientnet as E

    name = f"mobilenetv1_{round(mult * 100):03d}"
    return (lambda: E._gen_mobilenet_v1(name, mult),
            f"timm {timm.__version__} _gen_mobilenet_v1('{name}', channel_multiplier={mult})")


def _megvii_shufflenetv1():
    """megvii-model/ShuffleNet-Series@aa91feb (git archive of ShuffleNetV1/ under $REPOS/ShuffleNet-Series)."""
    import importlib

    def build():
        sys.path.insert(0, str(REPOS / "ShuffleNet-Series" / "ShuffleNetV1"))
        return importlib.import_module("network").ShuffleNetV1(model_size="1.0x", group=3)

    return build, "megvii-model/ShuffleNet-Series@aa91feb ShuffleNetV1(model_size='1.0x', group=3)"


# our model -> [(layout, reference builder, input size)]; the first is the count reference
CASES = {
    "resnet18": [("torchvision", _tv("resnet18"), 224), ("timm", _timm("resnet18"), 224)],
    "resnet50": [("torchvision", _tv("resnet50"), 224), ("timm", _timm("resnet50"), 224)],
    "resnext50_32x4d": [("torchvision", _tv("resnext50_32x4d"), 224), ("timm", _timm("resnext50_32x4d"), 224)],
    "mobilenetv1_100": [("timm", _timm_mnv1(1.0), 224)],
    "mobilenetv1_075": [("timm", _timm_mnv1(0.75), 224)],
    "mobilenetv1_050": [("timm", _timm_mnv1(0.5), 224)],
    "shufflenetv2_050": [("torchvision", _tv("shufflenet_v2_x0_5"), 224)],
    "shufflenetv2_100": [("torchvision", _tv("shufflenet_v2_x1_0"), 224)],
    "shufflenetv2_150": [("torchvision", _tv("shufflenet_v2_x1_5"), 224)],
    "shufflenetv2_200": [("torchvision", _tv("shufflenet_v2_x2_0"), 224)],
    "regnetx_004": [("torchvision", _tv("regnet_x_400mf"), 224)],
    "regnetx_008": [("torchvision", _tv("regnet_x_800mf"), 224)],
    "regnetx_016": [("torchvision", _tv("regnet_x_1_6gf"), 224)],
    "regnety_004": [("torchvision", _tv("regnet_y_400mf"), 224)],
    "regnety_008": [("torchvision", _tv("regnet_y_800mf"), 224)],
    "regnety_016": [("torchvision", _tv("regnet_y_1_6gf"), 224)],
    "efficientnet_b0": [("torchvision", _tv("efficientnet_b0"), 224), ("timm", _timm("efficientnet_b0"), 224)],
    "efficientnet_b1": [("torchvision", _tv("efficientnet_b1"), 240), ("timm", _timm("efficientnet_b1"), 240)],
    "efficientnet_b2": [("torchvision", _tv("efficientnet_b2"), 260), ("timm", _timm("efficientnet_b2"), 260)],
    "efficientnet_b3": [("torchvision", _tv("efficientnet_b3"), 300), ("timm", _timm("efficientnet_b3"), 300)],
    "shufflenetv1_g3_100": [("megvii", _megvii_shufflenetv1(), 224)],
    "eca_nfnet_l0": [("timm", _timm("eca_nfnet_l0"), 288)],
    "efficientnetv2_b0": [("timm", _timm("tf_efficientnetv2_b0"), 224)],
    "efficientnetv2_s": [("torchvision", _tv("efficientnet_v2_s"), 384), ("timm", _timm("tf_efficientnetv2_s"), 384)],
}


@torch.no_grad()
def record(build, size: int) -> dict:
    model = build().eval()
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, 3, size, size))
    keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return {"params": params, "macs": fc.get_total_flops() // 2, "size": size, "keys": keys}


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    for ours, refs in CASES.items():
        if argv and ours not in argv:
            continue
        data[ours] = {}
        for layout, (build, what), size in refs:
            data[ours][layout] = {"reference": what, **record(build, size)}
            r = data[ours][layout]
            print(f"{ours:20s} {layout:12s} {r['params']:>12,} params {r['macs']:>15,} MACs  {what}")
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
