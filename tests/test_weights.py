"""Generic checkpoint loader behaviour on a real small model (mobileone_s0): bad files, unsafe pickles,
mismatched state_dicts, wrappers, and the CLI's handling of a bad --weights file."""

from __future__ import annotations

import builtins
import zipfile

import pytest
import torch
from safetensors.torch import save_file

import mobexport
from mobexport.cli import main
from mobexport.exporter.errors import WeightsError
from mobexport.exporter.weights import get_layout, load_weights, read_state_dict

NAME, FAMILY = "mobileone_s0", "mobileone"


@pytest.fixture(scope="module")
def good_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in mobexport.create_model(NAME).state_dict().items()}


@pytest.fixture
def model():
    torch.manual_seed(1)  # different weights from good_sd
    return mobexport.create_model(NAME)


def _snapshot(m) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def _assert_untouched(m, before) -> None:
    after = m.state_dict()
    assert after.keys() == before.keys(), "module structure changed (re-parameterized?) after a failed load"
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"tensors changed by a failed load: {changed[:3]}"


def _fails(model, path, *needles) -> str:
    before = _snapshot(model)
    with pytest.raises(WeightsError) as exc:
        load_weights(model, FAMILY, path)
    _assert_untouched(model, before)
    msg = str(exc.value)
    for n in needles:
        assert n in msg, f"{n!r} not in: {msg}"
    return msg


def test_random_bytes_file_is_refused(tmp_path, model):
    p = tmp_path / "noise.pth"
    p.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                dtype=torch.uint8).numpy().tobytes())
    _fails(model, p, "cannot read weights file", str(p))


def test_truncated_zip_is_refused(tmp_path, model, good_sd):
    full = tmp_path / "full.pth"
    torch.save(good_sd, full)
    assert zipfile.is_zipfile(full)
    p = tmp_path / "truncated.pth"
    p.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _fails(model, p, "cannot read weights file")


def test_corrupt_safetensors_is_refused(tmp_path, model):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    _fails(model, p, "cannot read weights file")


def test_missing_file_is_refused(tmp_path, model):
    _fails(model, tmp_path / "nope.pth", "not found")


class _Payload:
    """Unpickling this would call builtins.open(marker, 'w') — i.e. execute code with a side effect."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_pickle_with_disallowed_global_is_refused_not_executed(tmp_path, model, good_sd):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pth"
    torch.save({"state_dict": good_sd, "extra": _Payload(marker)}, p)
    assert not marker.exists()
    _fails(model, p, "cannot read weights file")
    assert not marker.exists(), "the pickle payload was executed"


def test_missing_keys_are_named(tmp_path, model, good_sd):
    drop = ["stem.conv_kxk.0.conv.weight", "stem.conv_kxk.0.bn.weight"]
    p = tmp_path / "missing.pth"
    torch.save({k: v for k, v in good_sd.items() if k not in drop}, p)
    _fails(model, p, "missing", *drop)


def test_extra_keys_are_named(tmp_path, model, good_sd):
    p = tmp_path / "extra.pth"
    torch.save({**good_sd, "aux_head.weight": torch.zeros(3), "aux_head.bias": torch.zeros(3)}, p)
    _fails(model, p, "unexpected", "aux_head.weight")


def test_wrong_shape_is_named(tmp_path, model, good_sd):
    p = tmp_path / "shape.safetensors"
    bad = dict(good_sd)
    bad["head.fc.weight"] = torch.zeros(10, 1024)
    save_file(bad, str(p))
    _fails(model, p, "mis-shaped", "head.fc.weight", "(10, 1024)", "(1000, 1024)")


def test_not_a_state_dict_is_refused(tmp_path, model):
    p = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], p)
    _fails(model, p, "does not contain a state_dict")


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix", "state_dict+module"])
def test_wrappers_and_module_prefix_are_accepted(tmp_path, model, good_sd, wrap):
    sd = {f"module.{k}": v for k, v in good_sd.items()} if "module" in wrap else dict(good_sd)
    obj = {"state_dict": sd, "epoch": 3} if wrap.startswith("state_dict") else {"model": sd} if wrap == "model" \
        else sd
    p = tmp_path / "wrapped.pth"
    torch.save(obj, p)
    assert read_state_dict(p).keys() == good_sd.keys()
    assert load_weights(model, FAMILY, p).startswith("mobexport (train form)")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], good_sd[k]) for k in good_sd)


def test_create_model_with_weights_equals_source(tmp_path, good_sd):
    p = tmp_path / "w.safetensors"
    save_file(good_sd, str(p))
    m = mobexport.create_model(NAME, weights=p)
    assert all(torch.equal(m.state_dict()[k], good_sd[k]) for k in good_sd)


@pytest.mark.parametrize("content", [b"\x00garbage", None])
def test_cli_info_with_bad_weights_exits_2(tmp_path, capsys, content):
    bad = tmp_path / "bad.pth"
    if content is not None:
        bad.write_bytes(content)
    assert main(["info", NAME, "--weights", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(bad) in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- checkpoints as training code writes them
# A small model with a 10-class head (a fine-tune), in our layout and in torchvision's / timm's.

SMALL, SMALL_FAMILY = "mobilenetv3_small_100", "mobilenetv3"


def _small(seed: int):
    torch.manual_seed(seed)
    return mobexport.create_model(SMALL, num_classes=10)


@pytest.fixture(scope="module")
def raw_sd():
    return _snapshot(_small(10))


@pytest.fixture(scope="module")
def ema_sd():
    return _snapshot(_small(11))


def _load_small(path) -> tuple[str, dict[str, torch.Tensor]]:
    m = mobexport.create_model(SMALL, weights=path, num_classes=10)
    return m.loaded_from, _snapshot(m)


def _equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _lightning(sd, prefix: str) -> dict:
    return {"epoch": 7, "global_step": 700, "pytorch-lightning_version": "2.4.0",
            "state_dict": {f"{prefix}{k}": v for k, v in sd.items()},
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3), "step": torch.tensor(3.0)}},
                                  "param_groups": [{"lr": 0.1, "params": [0]}]}],
            "lr_schedulers": [{"last_epoch": 7}], "callbacks": {}, "hyper_parameters": {"lr": 0.1}}


@pytest.mark.parametrize("wrap,entry", [
    ("plain", ""), ("state_dict", "state_dict"), ("model", "model"), ("model_state", "model_state"),
    ("model_ema", "model_ema"), ("ddp", ""), ("model+module", "model.module")])
def test_each_wrapper_kind_loads_and_names_its_entry(tmp_path, raw_sd, wrap, entry):
    sd = {f"module.{k}": v for k, v in raw_sd.items()} if wrap == "ddp" else raw_sd
    obj = {"plain": sd, "ddp": sd, "model+module": {"model": {"module": sd}, "epoch": 1}}.get(wrap)
    obj = obj if obj is not None else {wrap: sd, "epoch": 1}
    torch.save(obj, tmp_path / "w.pth")
    desc, loaded = _load_small(tmp_path / "w.pth")
    assert desc == "mobexport (train form)" + (f", from '{entry}'" if entry else "")
    assert _equal(loaded, raw_sd)


@pytest.mark.parametrize("prefix", ["model.", "net.", "backbone.", "module.model."])
def test_lightning_checkpoint_prefix_is_stripped(tmp_path, raw_sd, prefix):
    torch.save(_lightning(raw_sd, prefix), tmp_path / "last.ckpt")
    desc, loaded = _load_small(tmp_path / "last.ckpt")
    stripped = prefix.removeprefix("module.")  # DDP's module. goes first, on its own
    assert desc == f"mobexport (train form), from 'state_dict', key prefix '{stripped}' stripped"
    assert _equal(loaded, raw_sd)


def test_lightning_module_with_raw_and_ema_models_loads_the_ema_one(tmp_path, raw_sd, ema_sd):
    ckpt = _lightning(raw_sd, "model.")
    ckpt["state_dict"].update({f"ema_model.{k}": v for k, v in ema_sd.items()})
    ckpt["state_dict"]["criterion.weight"] = torch.ones(10)
    torch.save(ckpt, tmp_path / "ema.ckpt")
    desc, loaded = _load_small(tmp_path / "ema.ckpt")
    assert desc == "mobexport (train form), from 'state_dict', key prefix 'ema_model.' stripped"
    assert _equal(loaded, ema_sd)


def test_timm_train_checkpoint_prefers_ema_weights(tmp_path, raw_sd, ema_sd):
    import argparse

    import numpy as np

    timm = get_layout(SMALL_FAMILY, "timm")
    ckpt = {"epoch": 299, "arch": "mobilenetv3_small_100", "version": 2,
            "state_dict": timm.from_ours(raw_sd), "state_dict_ema": timm.from_ours(ema_sd),
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]},
            "args": argparse.Namespace(model="mobilenetv3_small_100", lr=0.064), "metric": np.float64(65.2)}
    torch.save(ckpt, tmp_path / "model_best.pth.tar")
    desc, loaded = _load_small(tmp_path / "model_best.pth.tar")
    assert desc == "timm (train form), from 'state_dict_ema'"
    assert _equal(loaded, ema_sd) and not _equal(loaded, raw_sd)


def test_safetensors_in_torchvision_layout_applies_torchvision_batchnorm(tmp_path, raw_sd):
    tv = get_layout(SMALL_FAMILY, "torchvision")
    save_file({k: v.contiguous() for k, v in tv.from_ours(raw_sd).items()}, str(tmp_path / "tv.safetensors"))
    m = mobexport.create_model(SMALL, weights=tmp_path / "tv.safetensors", num_classes=10)
    assert m.loaded_from == ("torchvision (train form); BatchNorm eps 0.001, momentum 0.01 "
                             "as torchvision MobileNetV3 builds it")
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)
    assert _equal(_snapshot(m), raw_sd)


def test_timm_layout_keeps_timm_batchnorm(tmp_path, raw_sd):
    torch.save(get_layout(SMALL_FAMILY, "timm").from_ours(raw_sd), tmp_path / "timm.pth")
    m = mobexport.create_model(SMALL, weights=tmp_path / "timm.pth", num_classes=10)
    assert m.loaded_from == "timm (train form)"
    assert {b.eps for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)} == {1e-5}


def test_deploy_form_in_a_wrapper_loads_re_parameterized(tmp_path):
    src = _small(12)
    deploy_sd = _snapshot(mobexport.reparameterize(src))
    torch.save({"model": {f"module.{k}": v for k, v in deploy_sd.items()}}, tmp_path / "deploy.pt")
    desc, loaded = _load_small(tmp_path / "deploy.pt")
    assert desc == "mobexport (deploy form), from 'model'"
    assert _equal(loaded, deploy_sd)


@pytest.mark.parametrize("layout", [None, "torchvision"])
def test_head_class_count_mismatch_says_which_flag_fixes_it(tmp_path, raw_sd, layout):
    sd = raw_sd if layout is None else get_layout(SMALL_FAMILY, layout).from_ours(raw_sd)
    torch.save({"state_dict": sd}, tmp_path / "ft.pth")
    model = mobexport.create_model(SMALL)  # 1000 classes
    before = _snapshot(model)
    with pytest.raises(WeightsError) as exc:
        load_weights(model, SMALL_FAMILY, tmp_path / "ft.pth")
    _assert_untouched(model, before)
    assert ("classifier has 10 classes in the file but the model was built with 1000: pass --num-classes 10 "
            "(Python: num_classes=10)") in str(exc.value)
    assert exc.value.exit_code == 2


def test_backbone_mismatch_is_not_reported_as_a_head_mismatch(tmp_path, raw_sd):
    bad = dict(raw_sd)
    bad["blocks.0.dw.conv.weight"] = torch.zeros(16, 1, 5, 5)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as exc:
        mobexport.create_model(SMALL, weights=tmp_path / "bad.pth", num_classes=10)
    msg = str(exc.value)
    assert "mis-shaped" in msg and "(16, 1, 5, 5)" in msg and "num-classes" not in msg


def test_unknown_wrapper_names_what_it_found_and_what_is_understood(tmp_path, model):
    p = tmp_path / "odd.pth"
    torch.save({"weights_blob": [1, 2, 3], "epoch": 3, "optimizer": {"state": {}}}, p)
    msg = _fails(model, p, "does not contain a state_dict", "'epoch'", "'weights_blob'", "state_dict_ema",
                 "model_state")
    assert "Lightning" in msg


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_first_tensor(tmp_path, model, good_sd, bad):
    sd = dict(good_sd)
    first = "stem.conv_scale.conv.weight"
    sd[first] = sd[first].clone()
    sd[first][0, 0, 0, 0] = bad
    sd["head.fc.bias"] = torch.full_like(sd["head.fc.bias"], bad)
    p = tmp_path / "diverged.pth"
    torch.save({"state_dict": sd}, p)
    msg = _fails(model, p, "NaN" if bad != bad else "Inf", f"'{first}'")
    assert "head.fc.bias" not in msg


def test_unsafe_pickle_message_never_suggests_weights_only_false(tmp_path, model, good_sd):
    p = tmp_path / "evil.pth"
    torch.save({"state_dict": good_sd, "extra": _Payload(tmp_path / "pwned")}, p)
    msg = _fails(model, p, "not a plain tensor checkpoint", "io.open", "never unpickles arbitrary objects")
    assert "weights_only" not in msg and "add_safe_globals" not in msg


def test_corrupt_file_message_never_suggests_weights_only_false(tmp_path, model, good_sd):
    full = tmp_path / "full.pth"
    torch.save(good_sd, full)
    p = tmp_path / "truncated.pth"
    p.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    msg = _fails(model, p, "cannot read weights file")
    assert "weights_only" not in msg


@pytest.mark.parametrize("arch,refused", [("tf_mobilenetv3_small_100", True), ("mobilenetv3_small_100", False)])
def test_timm_checkpoint_of_a_same_keys_other_numerics_variant_is_refused(tmp_path, raw_sd, arch, refused):
    """timm's tf_mobilenetv3_* share mobilenetv3_*'s keys but compute with eps 1e-3 and TF-SAME padding."""
    timm = get_layout(SMALL_FAMILY, "timm")
    torch.save({"arch": arch, "epoch": 3, "state_dict": timm.from_ours(raw_sd)}, tmp_path / "ckpt.pth.tar")
    model = mobexport.create_model(SMALL, num_classes=10)
    before = _snapshot(model)
    if not refused:
        assert load_weights(model, SMALL_FAMILY, tmp_path / "ckpt.pth.tar") == "timm (train form), from 'state_dict'"
        return
    with pytest.raises(WeightsError) as exc:
        load_weights(model, SMALL_FAMILY, tmp_path / "ckpt.pth.tar")
    _assert_untouched(model, before)
    assert f"a {arch} checkpoint" in str(exc.value) and "TF-SAME" in str(exc.value)


def test_timm_pytorch_efficientnet_lite_checkpoint_is_refused(tmp_path):
    src = mobexport.create_model("efficientnet_lite0")
    sd = get_layout("efficientnet_lite", "timm").from_ours(src.state_dict())
    torch.save({"arch": "efficientnet_lite0", "state_dict": sd}, tmp_path / "lite.pth.tar")
    with pytest.raises(WeightsError, match="symmetric padding"):
        mobexport.create_model("efficientnet_lite0", weights=tmp_path / "lite.pth.tar")
    torch.save({"arch": "tf_efficientnet_lite0", "state_dict": sd}, tmp_path / "tf_lite.pth.tar")
    m = mobexport.create_model("efficientnet_lite0", weights=tmp_path / "tf_lite.pth.tar")
    assert m.loaded_from == "timm (train form), from 'state_dict'"


def test_a_mismatch_inside_a_lightning_checkpoint_names_the_model_keys(tmp_path, raw_sd):
    bad = dict(raw_sd)
    bad["blocks.0.dw.conv.weight"] = torch.zeros(16, 1, 5, 5)
    ckpt = _lightning(bad, "model.")
    ckpt["state_dict"]["criterion.weight"] = torch.ones(10)  # a second attribute: no common prefix
    torch.save(ckpt, tmp_path / "bad.ckpt")
    with pytest.raises(WeightsError) as exc:
        mobexport.create_model(SMALL, weights=tmp_path / "bad.ckpt", num_classes=10)
    msg = str(exc.value)
    assert "key prefix 'model.' stripped" in msg and "blocks.0.dw.conv.weight: file (16, 1, 5, 5)" in msg


class _Shouty:
    """A family mapping that is no rule table of exporter/keymap.py: any object with apply() (a filter function)."""

    def apply(self, sd, to_ours):
        return {(k.lower() if to_ours else k.upper()): v for k, v in sd.items()}


def test_a_layout_mapping_may_be_any_object_with_apply_and_mismatches_use_its_names(monkeypatch):
    from mobexport.exporter import weights

    monkeypatch.setitem(weights._LAYOUTS, "toy", [weights.KeyLayout("shouty", _Shouty())])
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    sd = {k.upper(): torch.randn_like(v) for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match=r"closest layout: shouty \(train form\): 1 missing \(first: 0\.BIAS\) "
                                           r"\(the file's key names\)"):
        weights.load_into(model, "toy", {"0.WEIGHT": sd["0.WEIGHT"]})
    assert weights.load_into(model, "toy", sd) == "shouty (train form)"
    assert torch.equal(model[0].weight, sd["0.WEIGHT"]) and torch.equal(model[0].bias, sd["0.BIAS"])
