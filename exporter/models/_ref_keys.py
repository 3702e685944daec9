"""Key rule tables shared by several families (data for exporter/keymap.py; not a family: the registry skips it).

- MobileOne and RepVGG: the official repositories' ``stage0`` / ``stage{s}`` / ``linear`` ↔ our ``stem`` /
  ``stages.{s-1}`` / ``head.fc`` (``STAGES``), before each layout's block renames.
- MobileNetV2/V3, EfficientNet-Lite (and the InvertedResidual block): one module table row per ConvNormAct or SE,
  for timm, torchvision and lukemelas ``efficientnet_pytorch`` blocks (``block_rows``).
"""

from __future__ import annotations

from ..errors import UsageError
from ..keymap import Regex, Row

STAGES = Regex(
    to_ours_rules=((r"^stage0\.", "stem."), (r"^stage(\d+)\.", lambda m: f"stages.{int(m[1]) - 1}."),
                   (r"^linear\.", "head.fc.")),
    from_ours_rules=((r"^stem\.", "stage0."), (r"^stages\.(\d+)\.", lambda m: f"stage{int(m[1]) + 1}."),
                     (r"^head\.fc\.", "linear.")))


def cna_rows(ours: str, conv: str, bn: str) -> list[Row]:
    """A ConvNormAct (``ours.conv`` / ``ours.bn``) against their conv and BN module paths."""
    return [(f"{ours}.conv", conv, None), (f"{ours}.bn", bn, None)]


def block_rows(style: str, ours: str, theirs: str, *, has_expand: bool, has_se: bool) -> list[Row]:
    """Rows for one InvertedResidual at ``ours`` against a reference block at ``theirs``.

    Styles: "timm" (DepthwiseSeparableConv / InvertedResidual), "torchvision_v2" (MobileNetV2
    ``conv.N``), "torchvision_v3" (MobileNetV3 ``block.N``), "lukemelas" (efficientnet_pytorch MBConv).
    """
    t, rows = theirs, []
    if style == "timm":
        if has_expand:
            rows += cna_rows(f"{ours}.expand", f"{t}.conv_pw", f"{t}.bn1")
            rows += cna_rows(f"{ours}.dw", f"{t}.conv_dw", f"{t}.bn2")
            proj = cna_rows(f"{ours}.project", f"{t}.conv_pwl", f"{t}.bn3")
        else:
            rows += cna_rows(f"{ours}.dw", f"{t}.conv_dw", f"{t}.bn1")
            proj = cna_rows(f"{ours}.project", f"{t}.conv_pw", f"{t}.bn2")
        se = (f"{t}.se.conv_reduce", f"{t}.se.conv_expand")
    elif style == "torchvision_v2":
        if has_se:
            raise UsageError("torchvision MobileNetV2 blocks have no SE")
        j = 0
        if has_expand:
            rows += cna_rows(f"{ours}.expand", f"{t}.conv.0.0", f"{t}.conv.0.1")
            j = 1
        rows += cna_rows(f"{ours}.dw", f"{t}.conv.{j}.0", f"{t}.conv.{j}.1")
        proj = cna_rows(f"{ours}.project", f"{t}.conv.{j + 1}", f"{t}.conv.{j + 2}")
        se = ("", "")
    elif style == "torchvision_v3":
        j = 0
        if has_expand:
            rows += cna_rows(f"{ours}.expand", f"{t}.block.0.0", f"{t}.block.0.1")
            j = 1
        rows += cna_rows(f"{ours}.dw", f"{t}.block.{j}.0", f"{t}.block.{j}.1")
        se = (f"{t}.block.{j + 1}.fc1", f"{t}.block.{j + 1}.fc2")
        p = j + 1 + int(has_se)
        proj = cna_rows(f"{ours}.project", f"{t}.block.{p}.0", f"{t}.block.{p}.1")
    elif style == "lukemelas":
        if has_expand:
            rows += cna_rows(f"{ours}.expand", f"{t}._expand_conv", f"{t}._bn0")
        rows += cna_rows(f"{ours}.dw", f"{t}._depthwise_conv", f"{t}._bn1")
        se = (f"{t}._se_reduce", f"{t}._se_expand")
        proj = cna_rows(f"{ours}.project", f"{t}._project_conv", f"{t}._bn2")
    else:
        raise UsageError(f"unknown block key style '{style}'")
    if has_se:
        rows += [(f"{ours}.se.reduce", se[0], None), (f"{ours}.se.expand", se[1], None)]
    return rows + proj
