"""reparameterize() keeps the model's dtype and device: every fresh conv/linear/parameter it builds (BN folding,
branch merging, input-affine folding, ChannelAffine) lands on the weights' dtype and device.

Every registered model, float64, at a reduced input size (SMALL below, 64×64: every family's strides and
MobileViT's 2×2 patches divide it), so the whole file stays fast; the equivalence at the spec's input size is
tested in test_models.py.
"""

from __future__ import annotations

import copy

import pytest
import torch

from mobexport.api import create_model, list_models, reparameterize
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error

SMALL = 64
MODELS = list_models()
NO_CUDA = "no CUDA device: torch.cuda.is_available() is False"


def _check_deploy_keeps(name: str, dtype: torch.dtype, device: str, tol: float) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    randomize_batchnorm(model, seed=1)
    model = model.to(device=device, dtype=dtype).eval()
    deploy = reparameterize(copy.deepcopy(model))
    wrong = [(k, t.dtype, t.device.type) for k, t in deploy.state_dict().items()
             if t.is_floating_point() and (t.dtype != dtype or t.device.type != torch.device(device).type)]
    assert not wrong, f"{name}: deploy tensors not {dtype}/{device}: {wrong[:5]}"
    x = torch.randn(2, 3, SMALL, SMALL, dtype=dtype, device=device)
    with torch.no_grad():
        ref, out = model(x), deploy(x)
    assert out.dtype == dtype and out.device.type == torch.device(device).type
    err = rel_max_error(ref, out)
    assert err <= tol, f"{name}: train vs deploy relative max error {err:.2e} > {tol:.0e}"


@pytest.mark.parametrize("name", MODELS)
def test_reparameterize_keeps_float64(name):
    _check_deploy_keeps(name, torch.float64, "cpu", 1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.parametrize("name", MODELS)
def test_reparameterize_keeps_cuda_device(name):
    _check_deploy_keeps(name, torch.float64, "cuda", 1e-9)
