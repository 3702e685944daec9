"""Record golden outputs of the reference implementations for tests/test_golden.py (run once, never in CI).

For each reference key layout the loader accepts, build the reference model with its own code, fill its
state_dict with the deterministic weights of tests/golden/weights.py (randomized BatchNorm statistics,
running_var over [1e-4, 2]), run two fixed N(0, 1) inputs in float64 and write tests/golden/<family>__<layout>__
<model>.json: layout, our model name, the reference, seeds, input shape, the reference state_dict's
(key, shape) list and the float64 logits. No weights are stored: the test regenerates them from that list.

How to regenerate (a separate venv outside the repository; none of this is a project dependency):

    python3 -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm==1.0.31 numpy==2.4.6 safetensors==0.8.0
    /tmp/peer-venv/bin/pip install --no-deps efficientnet-lite-pytorch==0.1.0   # lukemelas-style Lite port
    # reference repositories, as plain source trees (git archive of these commits):
    #   apple/ml-mobileone      b7f4e6d48884593c7eb46eedc53c3a097c09e957  -> REPOS/ml-mobileone
    #   DingXiaoH/RepVGG        eae7c5204001eaf195bbe2ee72fb6a37855cce33  -> REPOS/RepVGG
    #   xiaomi-automl/MoGA      305588d4b58fa1db1e7b4884d09b544f1e28ef50  -> REPOS/MoGA
    #   apple/ml-cvnets         d38a116fe134a8cd5db18670764fdaafd39a5d4f  -> REPOS/cvnets-v1, then copy
    #       micronDLA/MobileViTv3 d381beb017ae3c244686afaa48064f95865df7b9 MobileViTv3-v1/* over it
    #   apple/ml-cvnets         84d992f413e52c0468f86d23196efd9dad885e6f  -> REPOS/cvnets-v2, then copy
    #       micronDLA/MobileViTv3 d381beb017ae3c244686afaa48064f95865df7b9 MobileViTv3-v2/* over it
    #   (as that repository's README says);
    #   megvii-model/ShuffleNet-Series aa91feb71b01f28d0b8da3533d20a3edb11b1810 -> REPOS/ShuffleNet-Series
    #   (ShuffleNetV1/ is enough); cvnets' import chain also needs, in the peer venv:
    /tmp/peer-venv/bin/pip install opencv-python-headless==5.0.0.93 ujson==6.1.0 psutil==7.2.2 pycocotools==2.0.11 \
        scipy==1.17.1
    /tmp/peer-venv/bin/python scripts/make_golden.py --repos REPOS [CASE ...]   # all cases by default

Recorded with exactly those versions (torch 2.14.1+cu130 wheel running on the CPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.golden.weights import generate, inputs  # noqa: E402  (numpy only)

SEED, INPUT_SEED = 20261130, 7
OUT = ROOT / "tests" / "golden"


@dataclass(frozen=True)
class Case:
    family: str
    layout: str
    model: str  # our zoo name
    reference: str  # what was built, in words
    build: Callable[[Path], nn.Module]
    size: int = 224


def _module(path: Path, name: str):
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tv(name: str):
    def build(_repos: Path) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None)

    return build


def _timm(name: str):
    def build(_repos: Path) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


def _apple_mobileone(repos: Path) -> nn.Module:
    return _module(repos / "ml-mobileone" / "mobileone.py", "apple_mobileone").mobileone(variant="s0")


def _official_repvgg(repos: Path) -> nn.Module:
    return _module(repos / "RepVGG" / "repvgg.py", "official_repvgg").create_RepVGG_A0(deploy=False)


def _official_moga(repos: Path) -> nn.Module:
    return _module(repos / "MoGA" / "models" / "MoGA_A.py", "official_moga_a").MoGaA()


_CVNETS_PACKAGES = ("cvnets", "options", "data", "utils", "common", "loss_fn", "metrics", "optim", "engine")


def _cvnets(tree: str, config: str):
    """A MobileViTv3 built by cvnets' own option parser and model registry from the repository's config."""

    def build(repos: Path) -> nn.Module:
        import collections
        import collections.abc
        import os
        from unittest import mock

        root = repos / tree
        for name in [m for m in sys.modules if m.split(".")[0] in _CVNETS_PACKAGES]:
            del sys.modules[name]  # the two cvnets trees share package names
        # video decoding, FLOP counting, Core ML and Cityscapes helpers are imported by cvnets' data and
        # benchmark code at import time but never used to build a classifier: stand-ins let it import
        for name in ("av", "pytorchvideo", "pytorchvideo.transforms", "fvcore", "fvcore.nn", "coremltools",
                     "cityscapesscripts"):
            sys.modules.setdefault(name, mock.MagicMock())
        collections.MutableMapping = collections.abc.MutableMapping  # cvnets@d38a116 predates Python 3.10
        sys.path.insert(0, str(root))
        cwd, argv = os.getcwd(), sys.argv
        try:
            os.chdir(root)
            sys.argv = ["make_golden", "--common.config-file", config]
            from cvnets import get_model
            from options.opts import get_training_arguments

            return get_model(get_training_arguments())
        finally:
            os.chdir(cwd)
            sys.argv = argv
            sys.path.remove(str(root))

    return build


def _timm_mnv1_050(_repos: Path) -> nn.Module:
    from timm.models.efficientnet import _gen_mobilenet_v1

    return _gen_mobilenet_v1("mobilenetv1_050", 0.5)


def _megvii_shufflenetv1(repos: Path) -> nn.Module:
    return _module(repos / "ShuffleNet-Series" / "ShuffleNetV1" / "network.py", "megvii_shufflenetv1").ShuffleNetV1(
        model_size="1.0x", group=3)


def _lukemelas_lite(_repos: Path) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


CASES = [
    Case("mobilenetv3", "torchvision", "mobilenetv3_small_100", "torchvision 0.29.1 mobilenet_v3_small",
         _tv("mobilenet_v3_small")),
    Case("mobilenetv3", "torchvision", "mobilenetv3_large_100", "torchvision 0.29.1 mobilenet_v3_large",
         _tv("mobilenet_v3_large")),
    Case("mobilenetv2", "torchvision", "mobilenetv2_100", "torchvision 0.29.1 mobilenet_v2", _tv("mobilenet_v2")),
    Case("mobilenetv2", "timm", "mobilenetv2_100", "timm 1.0.31 mobilenetv2_100", _timm("mobilenetv2_100")),
    Case("mobilenetv3", "timm", "mobilenetv3_small_100", "timm 1.0.31 mobilenetv3_small_100",
         _timm("mobilenetv3_small_100")),
    Case("mobileone", "timm", "mobileone_s0", "timm 1.0.31 mobileone_s0", _timm("mobileone_s0")),
    Case("mobileone", "apple", "mobileone_s0", "apple/ml-mobileone@b7f4e6d mobileone(variant='s0')",
         _apple_mobileone),
    Case("repvgg", "official", "repvgg_a0", "DingXiaoH/RepVGG@eae7c52 create_RepVGG_A0()", _official_repvgg),
    Case("repvgg", "timm", "repvgg_a0", "timm 1.0.31 repvgg_a0", _timm("repvgg_a0")),
    Case("efficientnet_lite", "timm", "efficientnet_lite0", "timm 1.0.31 tf_efficientnet_lite0",
         _timm("tf_efficientnet_lite0")),
    Case("efficientnet_lite", "lukemelas", "efficientnet_lite0",
         "efficientnet-lite-pytorch 0.1.0 EfficientNet.from_name('efficientnet-lite0')", _lukemelas_lite),
    Case("mobilenetv4", "timm", "mnv4_conv_s", "timm 1.0.31 mobilenetv4_conv_small",
         _timm("mobilenetv4_conv_small")),
    Case("mobilenetv4", "timm", "mnv4_hybrid_m", "timm 1.0.31 mobilenetv4_hybrid_medium",
         _timm("mobilenetv4_hybrid_medium"), 256),
    Case("moga", "official", "moga_a", "xiaomi-automl/MoGA@305588d MoGaA()", _official_moga),
    Case("mobilevitv3", "cvnets", "mobilevitv3_xxs",
         "apple/ml-cvnets@d38a116 + micronDLA/MobileViTv3@d381beb MobileViTv3-v1, mobilevitv3_xx_small config",
         _cvnets("cvnets-v1", "config/classification/mobilevitv3_xx_small_oneserver.yaml"), 256),
    Case("mobilevitv3", "cvnets", "mobilevitv3_0_5",
         "apple/ml-cvnets@84d992f + micronDLA/MobileViTv3@d381beb MobileViTv3-v2, width 0.5 config",
         _cvnets("cvnets-v2", "config/classification/finetune_higher_res_in1k/mobilevit_v3.yaml"), 256),
    # zoo III (issue #23)
    Case("resnet", "torchvision", "resnet18", "torchvision 0.29.1 resnet18", _tv("resnet18"), 64),
    Case("mobilenetv1", "timm", "mobilenetv1_050", "timm 1.0.31 _gen_mobilenet_v1('mobilenetv1_050', 0.5)",
         _timm_mnv1_050, 64),
    Case("shufflenetv2", "torchvision", "shufflenetv2_050", "torchvision 0.29.1 shufflenet_v2_x0_5",
         _tv("shufflenet_v2_x0_5"), 64),
    Case("regnet", "torchvision", "regnety_004", "torchvision 0.29.1 regnet_y_400mf", _tv("regnet_y_400mf"), 64),
    Case("efficientnet", "torchvision", "efficientnet_b0", "torchvision 0.29.1 efficientnet_b0",
         _tv("efficientnet_b0"), 64),
    Case("efficientnet", "timm", "efficientnet_b0", "timm 1.0.31 efficientnet_b0", _timm("efficientnet_b0"), 64),
    Case("efficientnetv2", "torchvision", "efficientnetv2_s", "torchvision 0.29.1 efficientnet_v2_s",
         _tv("efficientnet_v2_s"), 64),
    Case("efficientnetv2", "timm", "efficientnetv2_b0", "timm 1.0.31 tf_efficientnetv2_b0",
         _timm("tf_efficientnetv2_b0"), 64),
    Case("shufflenetv1", "megvii", "shufflenetv1_g3_100",
         "megvii-model/ShuffleNet-Series@aa91feb ShuffleNetV1(model_size='1.0x', group=3)", _megvii_shufflenetv1),
    Case("nfnet", "timm", "eca_nfnet_l0", "timm 1.0.31 eca_nfnet_l0", _timm("eca_nfnet_l0"), 64),
]


def fixture_name(case: Case) -> str:
    return f"{case.family}__{case.layout}__{case.model}.json"


@torch.no_grad()
def record(case: Case, repos: Path) -> dict:
    model = case.build(repos).eval()
    sd = model.state_dict()
    entries = [(k, list(v.shape)) for k, v in sd.items() if v.is_floating_point()]
    values = generate(SEED, entries)
    model.load_state_dict({k: torch.from_numpy(values[k]) for k, _ in entries}, strict=False)
    model = model.double()
    shape = (2, 3, case.size, case.size)
    logits = model(torch.from_numpy(inputs(INPUT_SEED, shape)))
    assert torch.isfinite(logits).all(), case
    return {"family": case.family, "layout": case.layout, "model": case.model, "reference": case.reference,
            "torch": torch.__version__, "seed": SEED, "input_seed": INPUT_SEED, "input_shape": list(shape),
            "entries": entries, "logits": logits.tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=Path, required=True, help="folder holding the reference repositories")
    ap.add_argument("cases", nargs="*", help="fixture names (default: all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for case in CASES:
        name = fixture_name(case)
        if args.cases and name.removesuffix(".json") not in args.cases and name not in args.cases:
            continue
        data = record(case, args.repos)
        (OUT / name).write_text(json.dumps(data, separators=(",", ":")) + "\n")
        print(f"{name}: {len(data['entries'])} tensors, |logits| max {np.abs(np.array(data['logits'])).max():.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
