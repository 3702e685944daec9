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
    if style == "torchvision_v2" and has_se:
        raise UsageError("torchvision MobileNetV2 blocks have no SE")
    mods = ["expand"] * has_expand + ["dw"] + ["se"] * has_se + ["project"]
    return [(f"{ours}.{mod}.{leaf}", f"{theirs}.{path}", None) for mod, paths in _block_names(style, mods).items()
            for leaf, path in zip(("reduce", "expand") if mod == "se" else ("conv", "bn"), paths, strict=True)]


_LUKEMELAS = {"expand": ("_expand_conv", "_bn0"), "dw": ("_depthwise_conv", "_bn1"), "se": ("_se_reduce", "_se_expand"),
              "project": ("_project_conv", "_bn2")}


def _block_names(style: str, mods: list[str]) -> dict[str, tuple[str, str]]:
    """{our module: (their conv or SE-reduce path, their BN or SE-expand path)} in ``mods`` order."""
    if style == "lukemelas":
        return {m: _LUKEMELAS[m] for m in mods}
    if style == "timm":
        convs = iter(("conv_pw", "conv_dw", "conv_pwl") if "expand" in mods else ("conv_dw", "conv_pw"))
        bns = (f"bn{i}" for i in range(1, 4))
        return {m: ("se.conv_reduce", "se.conv_expand") if m == "se" else (next(convs), next(bns)) for m in mods}
    if style == "torchvision_v3":
        return {m: (f"block.{j}.fc1", f"block.{j}.fc2") if m == "se" else (f"block.{j}.0", f"block.{j}.1")
                for j, m in enumerate(mods)}
    if style == "torchvision_v2":  # the project conv and its BN are two entries of the block's Sequential
        j = len(mods) - 1
        return {**{m: (f"conv.{i}.0", f"conv.{i}.1") for i, m in enumerate(mods[:-1])},
                "project": (f"conv.{j}", f"conv.{j + 1}")}
    raise UsageError(f"unknown block key style '{style}'")
