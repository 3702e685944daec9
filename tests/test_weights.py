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
from mobexport.exporter.weights import load_weights, read_state_dict

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
    assert load_weights(model, FAMILY, p) == "mobexport (train form)"
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
