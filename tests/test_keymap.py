"""The checkpoint key-mapping engine (exporter/keymap.py): each rule kind, inversion, and the errors it names."""

import pytest
import torch

from mobexport.exporter.keymap import CONV1X1, Grouped, Prefixes, Regex, Tables, ren, segment_renames


def _sd(*keys, shape=(1,)):
    return {k: torch.zeros(shape) for k in keys}


def test_regex_rules_apply_in_order_and_may_compute():
    rules = Regex(((r"^stage(\d+)\.", lambda m: f"stages.{int(m[1]) - 1}."), ren("stages.0", "stem")), ())
    out = rules.apply(_sd("stage1.conv.weight", "stage2.conv.weight"), to_ours=True)
    assert list(out) == ["stem.conv.weight", "stages.1.conv.weight"]  # the second rule saw the first's output


def test_ren_renames_whole_segments_only():
    rules = segment_renames([("identity", "rbr_skip")])
    out = rules.apply(_sd("a.rbr_skip.weight", "a.xrbr_skip.weight", "rbr_skip.bias"), to_ours=True)
    assert list(out) == ["a.identity.weight", "a.xrbr_skip.weight", "identity.bias"]


def test_segment_renames_invert_and_keep_first_rules_first():
    first = Regex(((r"^linear\.", "head.fc."),), ((r"^head\.fc\.", "linear."),))
    rules = segment_renames([("conv_kxk", "rbr_conv"), ("conv_scale", "rbr_scale")], first)
    theirs = _sd("s.rbr_conv.0.conv.weight", "s.rbr_scale.bn.bias", "linear.weight")
    ours = rules.apply(theirs, to_ours=True)
    assert list(ours) == ["s.conv_kxk.0.conv.weight", "s.conv_scale.bn.bias", "head.fc.weight"]
    assert rules.apply(ours, to_ours=False).keys() == theirs.keys()


def test_prefixes_longest_first_templates_and_inverse():
    pairs = Prefixes((("blocks.", "mb."), ("blocks.{i}.dw.conv.", "mb.{i}.conv2."), ("stem.conv.", "stem.0.")))
    ours = _sd("blocks.3.dw.conv.weight", "blocks.3.other.weight", "stem.conv.weight", "head.weight")
    theirs = pairs.apply(ours, to_ours=False)
    assert list(theirs) == ["mb.3.conv2.weight", "mb.3.other.weight", "stem.0.weight", "head.weight"]
    assert pairs.apply(theirs, to_ours=True).keys() == ours.keys()


def test_grouped_chooses_each_module_table_by_its_marker():
    fused = Prefixes((("conv_exp.bn.", "bn1."), ("conv_exp.conv.", "conv_exp.")))
    rules = Grouped(r"blocks\.\d+\.", kinds=((("conv_exp.", "conv_exp."), fused),),
                    default=Prefixes((("bn.", "bn1."),)), outside=Prefixes((("stem.bn.", "bn1."),)))
    theirs = _sd("blocks.0.conv_exp.weight", "blocks.0.bn1.weight", "blocks.1.bn1.weight", "bn1.weight")
    ours = rules.apply(theirs, to_ours=True)  # the same 'bn1.' is conv_exp.bn in block 0, bn in block 1
    assert list(ours) == ["blocks.0.conv_exp.conv.weight", "blocks.0.conv_exp.bn.weight", "blocks.1.bn.weight",
                          "stem.bn.weight"]
    assert rules.apply(ours, to_ours=False).keys() == theirs.keys()


def _tables():  # two variants that both map a stem + classifier file, differently
    large = [("stem.conv", "conv_stem", None), ("fc", "classifier", None), ("blocks.0.conv", "blocks.0.0.conv", None)]
    small = [("stem.conv", "conv_stem", None), ("head", "classifier", CONV1X1)]
    return [large, small]


def test_tables_pick_the_most_completely_covered_variant_and_transform_one_leaf():
    theirs = {"conv_stem.weight": torch.zeros(4, 3, 3, 3), "classifier.weight": torch.zeros(10, 4, 1, 1),
              "classifier.bias": torch.zeros(10)}
    ours = Tables(_tables()).apply(theirs, to_ours=True)  # both tables map every key; 'small' leaves none unused
    assert {k: tuple(v.shape) for k, v in ours.items()} == {"stem.conv.weight": (4, 3, 3, 3), "head.weight": (10, 4),
                                                            "head.bias": (10,)}
    back = Tables(_tables()).apply(ours, to_ours=False)
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_tables_refuse_a_key_no_table_maps_and_name_it():
    with pytest.raises(KeyError, match=r"reference → ours.*no row for 'extra\.weight'"):
        Tables(_tables()).apply(_sd("conv_stem.weight", "extra.weight"), to_ours=True)
    with pytest.raises(KeyError, match="ours → reference"):
        Tables(_tables()).apply(_sd("nothing.weight"), to_ours=False)


@pytest.mark.parametrize("rules", [segment_renames([("identity", "rbr_skip")]),
                                   Prefixes((("identity.", "rbr_skip."),))])
def test_two_keys_sent_to_one_name_are_refused_naming_both(rules):
    with pytest.raises(KeyError, match=r"'rbr_skip\.weight' and 'identity\.weight' both map to 'identity\.weight'"):
        rules.apply(_sd("rbr_skip.weight", "identity.weight"), to_ours=True)
