"""Zoo report (not a test): params (ours deploy/train, reference, published), MACs (ours, reference) and the
re-parameterization error with randomized BatchNorm statistics, for every registered model.

    python scripts/zoo_table.py [PATTERN] > results/zoo.md
"""

from __future__ import annotations

import copy
import sys

import torch

import mobexport
from mobexport.exporter.profile import count_macs, count_params
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error


def fmt(v, scale=1e6, digits=3):
    return "–" if v is None else f"{v / scale:.{digits}f}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(2)
    print("| model | input | params deploy (M) | params train (M) | reference (M) | published (M) | "
          "MACs ours (M) | MACs reference (M) | published MACs (M) | re-param rel. err |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in mobexport.list_models(argv[0] if argv else "*"):
        spec = mobexport.get_spec(name)
        torch.manual_seed(0)
        model = randomize_batchnorm(mobexport.create_model(name), seed=1).eval()
        train_params = count_params(model)
        x = torch.randn(1, *spec.input_size)
        with torch.no_grad():
            ref = model(x)
            deploy = mobexport.reparameterize(copy.deepcopy(model))
            err = rel_max_error(ref, deploy(x))
        macs = count_macs(deploy, spec.input_size)
        print(f"| {name} | {spec.input_size[1]} | {fmt(count_params(deploy))} | {fmt(train_params)} | "
              f"{fmt(spec.reference.params)} | {fmt(spec.published.params, digits=2)} | {fmt(macs, digits=1)} | "
              f"{fmt(spec.reference.macs, digits=1)} | {fmt(spec.published.macs, digits=0)} | {err:.1e} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
