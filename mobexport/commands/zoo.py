"""``mobexport list [PATTERN] [--json]`` and ``mobexport info NAME [--json] [--weights FILE] [--num-classes N]
[--input-size S|HxW]``."""

from __future__ import annotations

import argparse

from ._common import console, print_json


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    if name == "list":
        p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'mobileone*'")
    else:
        p.add_argument("model", help="model name (canonical or timm alias)")
        p.add_argument("--weights", help="local checkpoint to load (.pt/.pth/.safetensors)")
        p.add_argument("--no-count", action="store_true", help="skip building the model (spec only)")
        p.add_argument("--num-classes", type=int, default=None, metavar="N",
                       help="classifier outputs (default: the registered 1000)")
        p.add_argument("--input-size", default=None, metavar="S|HxW",
                       help="input height and width, e.g. 192 or 224x288 (default: the registered size)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    return _list(args) if args.command == "list" else _info(args)


def _list(args) -> int:
    from mobexport.exporter import registry

    names = registry.list_models(args.pattern)
    if args.json:
        print_json([_spec_row(registry.get_spec(n)) for n in names])
        return 0
    from rich.table import Table

    t = Table(title=f"{len(names)} models")
    for col in ("model", "family", "input", "params (pub.)", "MACs (pub.)", "top-1 (pub.)", "aliases"):
        t.add_column(col)
    for n in names:
        r = _spec_row(registry.get_spec(n))
        t.add_row(n, r["family"], "x".join(map(str, r["input_size"])), _m(r["published_params"]),
                  _m(r["published_macs"]), _f(r["published_top1"]), ", ".join(r["aliases"]))
    console().print(t)
    return 0


def _spec_row(spec) -> dict:
    return {"name": spec.name, "family": spec.family, "input_size": list(spec.input_size), "kind": spec.kind,
            "published_params": spec.published.params, "published_macs": spec.published.macs,
            "published_top1": spec.published.top1, "aliases": list(spec.aliases)}


def model_summary(name: str, weights=None, *, num_classes: int | None = None, input_size=None) -> dict:
    """Spec (for that shape) plus measured train/deploy params and deploy MACs at that shape (library function
    used by info and demo). Published/reference numbers stay only where they describe that shape."""
    import torch

    from mobexport.api import create_model, get_spec
    from mobexport.exporter.passes.reparameterize import reparameterize
    from mobexport.exporter.profile import count_macs, count_params

    spec = get_spec(name, num_classes=num_classes, input_size=input_size)
    torch.manual_seed(0)
    model = create_model(spec.name, weights=weights, num_classes=spec.num_classes, input_size=spec.input_size)
    train_params = count_params(model)
    reparameterize(model)
    deploy_params = count_params(model)
    macs = count_macs(model, spec.input_size)
    d = spec.to_dict()
    d["measured"] = {"train_params": train_params, "deploy_params": deploy_params, "deploy_macs": macs}
    if getattr(model, "loaded_from", None):
        d["weights"] = {"file": str(weights), "layout": model.loaded_from}
    return d


def _info(args) -> int:
    from mobexport.api import get_spec

    spec = get_spec(args.model, num_classes=args.num_classes, input_size=args.input_size)
    d = spec.to_dict() if args.no_count else model_summary(spec.name, args.weights, num_classes=spec.num_classes,
                                                           input_size=spec.input_size)
    if args.json:
        print_json(d)
        return 0
    _print_info(spec, d)
    return 0


def _print_info(spec, d: dict) -> None:
    from mobexport.exporter import registry

    c = console()
    c.print(f"[bold]{spec.name}[/bold]  family={spec.family}  kind={spec.kind}  input={spec.input_size}  "
            f"classes={spec.num_classes}")
    registered = registry.get_spec(spec.name)
    if spec != registered:
        c.print(f"shaped: published/reference numbers describe {registered.num_classes} classes at "
                f"{'x'.join(map(str, registered.input_size[1:]))} and are shown only where they still apply")
    pp = spec.preprocessing
    c.print(f"preprocessing: resize {pp.resize} → crop {'x'.join(map(str, pp.crop_hw))}, {pp.color}, "
            f"mean={pp.mean}, std={pp.std}, {pp.interpolation}")
    if "measured" in d:
        m = d["measured"]
        c.print(f"params: deploy {m['deploy_params']:,} (train {m['train_params']:,}) · reference "
                f"{_m(spec.reference.params)} · published {_m(spec.published.params)}")
        c.print(f"MACs:   deploy {m['deploy_macs'] / 1e6:.1f}M · reference {_m(spec.reference.macs)} · "
                f"published {_m(spec.published.macs)}")
    c.print(f"top-1 (published): {_f(spec.published.top1)}")
    if spec.aliases:
        c.print("aliases: " + ", ".join(spec.aliases))
    if spec.sources:
        c.print("sources: " + "; ".join(spec.sources))
    if "weights" in d:
        c.print(f"weights: {d['weights']['file']} ({d['weights']['layout']})")


def _m(v) -> str:
    if v is None:
        return "–"
    return f"{v / 1e6:.2f}M" if v < 1e9 else f"{v / 1e9:.2f}G"


def _f(v) -> str:
    return "–" if v is None else f"{v:.1f}"
