"""``mobexport onnx|tflite|coreml|tensorrt MODEL [--fp16|--int8|--w8] [--weights FILE] [--calibration DIR]
[--out DIR] [--json]``: one pipeline for every format (``converters.pipeline.export``).

The subcommands, their precision flags and their options come from the converter registry: the flags are
generated from the typed options (``GeneralOptions`` for every format, the converter's own ``Options``), so
adding a format touches no code here.
"""

from __future__ import annotations

import argparse

from ._common import console, notice, print_json

ALL_COMMAND = "export"  # `mobexport export NAME --to T1,T2|all`: every target in one go (see add_all_parser)

EPILOG = ("exit codes: 0 ok (also when no runtime exists here to validate: status UNVALIDATED_NO_RUNTIME), "
          "1 fidelity MISMATCH — the artifact is kept in OUT/<model>/<target>/ and its manifest.json says "
          "\"status\": \"MISMATCH\", but the command fails; 2 usage error (unknown model/target, conflicting "
          "flags, bad calibration dir, unwritable --out); 3 backend unavailable; 4 conversion failure "
          "(nothing is left behind)")


def add_option_flags(p: argparse.ArgumentParser, options_cls, converter) -> None:
    """One flag per field of a typed options class (``converters.base.option``): booleans are switches, choices
    and ints are checked by argparse too. Defaults are the fields' own."""
    import dataclasses
    import typing

    from mobexport.converters.base import flag

    hints = typing.get_type_hints(options_cls)
    for f in dataclasses.fields(options_cls):
        meta, hint = f.metadata, hints[f.name]
        if not meta.get("cli", True) or (meta.get("needs") and not meta["needs"](converter)):
            continue
        if hint is bool:
            p.add_argument(flag(f.name), action="store_true", help=meta["help"])
            continue
        kind = next(k for k in (int, float, str) if k is hint or k in typing.get_args(hint))
        p.add_argument(flag(f.name), type=kind, default=f.default, choices=meta["choices"] or None,
                       help=meta["help"])


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    from mobexport.converters import get_converter
    from mobexport.converters.base import GeneralOptions
    from mobexport.quantization.schemes import SCHEMES

    if name == ALL_COMMAND:
        return add_all_parser(p)
    conv = get_converter(name)
    p.epilog = EPILOG
    add_model_flags(p, calibration=any(t.needs_calibration for t in conv.targets),
                    precision=[SCHEMES[t.scheme] for t in conv.targets if SCHEMES[t.scheme].flag])
    add_option_flags(p, GeneralOptions, conv)
    p.add_argument("--json", action="store_true", help="print one JSON object (artifact, manifest, target, "
                                                      "status, fidelity)")
    add_option_flags(p.add_argument_group(f"{name} options"), conv.Options, conv)


def add_model_flags(p: argparse.ArgumentParser, *, calibration: bool, precision=()) -> None:
    """The model, weights, shape, labels and output flags every export command takes."""
    p.add_argument("model", help="a zoo model name (canonical or timm alias; see `mobexport list`), or YOUR model: "
                                 "path/to/file.py:factory or package.module:factory, a callable that returns the "
                                 "nn.Module (this imports and runs your code, by design)")
    for scheme in precision:
        p.add_argument(f"--{scheme.flag}", action="store_true", help=scheme.help)
    p.add_argument("--weights", help="local checkpoint (.pt/.pth/.safetensors; a bare or wrapped state_dict as "
                                     "training code writes it: Lightning, DDP, EMA); default: deterministic random "
                                     "weights (seed --seed) — latency is real, accuracy is not")
    p.add_argument("--num-classes", type=int, metavar="N", help="classifier size (a fine-tuned head); zoo models "
                                                                 "and factories that take num_classes")
    p.add_argument("--input-size", metavar="S|HxW", help="input resolution (default: the model's); the spec, MACs, "
                                                         "calibration and validation follow it")
    p.add_argument("--labels", metavar="FILE", help="class names, one a line: embedded in the artifact and manifest")
    p.add_argument("--name", help="output name (default: the zoo name or the factory's name)")
    p.add_argument("--mean", metavar="R,G,B", help="user models: input normalisation mean (default ImageNet)")
    p.add_argument("--std", metavar="R,G,B", help="user models: input normalisation std (default ImageNet)")
    p.add_argument("--out", default="exports", help="output root; the artifact goes to OUT/<model>/<target>/")
    if calibration:
        p.add_argument("--calibration", metavar="DIR",
                       help="folder of real photos for --int8 calibration (default: `make assets` photos)")


def run(args) -> int:
    from mobexport.converters import get_converter, target_for
    from mobexport.converters.base import GeneralOptions
    from mobexport.converters.pipeline import export
    from mobexport.quantization.schemes import FLAG_SCHEMES

    from ._common import backend_output
    from .live import progress

    if args.command == ALL_COMMAND:
        return run_all(args)
    conv = get_converter(args.command)
    target = target_for(args.command, {f: bool(getattr(args, f, False)) for f in FLAG_SCHEMES})
    options = {k: getattr(args, k) for k in GeneralOptions.names() | conv.Options.names() if hasattr(args, k)}
    # on a terminal a live display, else one line per finished step, on stderr (with --json: stdout stays JSON)
    with progress() as printer, backend_output(printer):
        result = export(args.model, target.id, weights=args.weights, out_dir=args.out,
                        calibration_dir=getattr(args, "calibration", None), options=options, progress=printer,
                        num_classes=args.num_classes, input_size=args.input_size, labels=args.labels,
                        name=args.name, preprocessing=_preprocessing(args))
    if args.json:
        print_json(result.to_json())
    else:
        _render(result)
    return result.exit_code


ALL_EPILOG = ("exit code: the highest of the per-target codes — 0 OK or UNVALIDATED_NO_RUNTIME (no runtime here "
              "to validate; its benchmark is SKIPPED), 1 MISMATCH or LOAD_FAILED at validation (artifact kept), "
              "2 usage error, 3 SKIPPED: target unavailable on this host, 4 CONVERT_FAILED, or the artifact "
              "failed to load or run in the benchmark, 5 internal error")


def add_all_parser(p: argparse.ArgumentParser) -> None:
    """``mobexport export NAME --to T1,T2,...|all [--bench] [--runs N] [--json]``: the export commands' model
    flags and general options, no format-specific ones."""
    from mobexport.converters.base import GeneralOptions

    p.epilog = ALL_EPILOG
    add_model_flags(p, calibration=True)
    p.add_argument("--to", required=True, metavar="T1,T2,...|all",
                   help="target ids (tflite-w8a8), format names meaning their default target (onnx), or 'all': "
                        "every target this host can build")
    p.add_argument("--bench", action="store_true", help="then time each artifact whose runtime exists here")
    p.add_argument("--runs", type=int, default=100, help="timed round trips per artifact with --bench (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up runs with --bench (default 10)")
    p.add_argument("--db", help="results database for --bench, as `mobexport bench` (default ./mobexport-results.db)")
    p.add_argument("--no-store", action="store_true", help="with --bench: do not write the results database")
    # general options that apply to every target: none that a converter must offer (--report, --range-search, ...)
    add_option_flags(p, GeneralOptions, _NoConverter())
    p.add_argument("--json", action="store_true", help="print one JSON object per target (a list)")


class _NoConverter:
    """What a general option's ``needs`` asks of a converter, answered for none: every feature is absent."""

    def __getattr__(self, name: str):
        return ()


def run_all(args) -> int:
    import contextlib

    from mobexport.benchmarks.export_all import export_all, select_targets, worst_exit_code
    from mobexport.converters.base import GeneralOptions

    from ._common import backend_output
    from .live import progress

    targets = select_targets(args.to)  # a typo in --to is answered before anything is exported
    options = {k: getattr(args, k) for k in GeneralOptions.names() if hasattr(args, k)}
    with contextlib.ExitStack() as stack:
        store = None
        if args.bench and not args.no_store:  # opened first: a bad --db is answered before any export
            from mobexport.benchmarks.store import open_store

            store = stack.enter_context(open_store(args.db))
        printer = stack.enter_context(progress())
        records = export_all(args.model, targets, bench=args.bench, runs=args.runs, warmup=args.warmup,
                             out_dir=args.out, progress=printer, wrap=lambda: backend_output(printer), store=store,
                             report=printer.runs,
                             weights=args.weights, calibration_dir=args.calibration, options=options,
                             num_classes=args.num_classes, input_size=args.input_size, labels=args.labels,
                             name=args.name, preprocessing=_preprocessing(args))
    if args.json:
        print_json([r.to_json() for r in records])
    else:
        render_all(records, bench=args.bench)
        stored = [r.result_id for r in records if r.result_id is not None]
        if stored:
            from mobexport.benchmarks.store import DEFAULT_DB, redact_url

            notice(f"stored {len(stored)} result(s) in {redact_url(args.db or DEFAULT_DB)}: "
                   "`mobexport results` lists them")
    return worst_exit_code(records)


def _status_text(r, bench: bool) -> str:
    skipped = bench and r.bench_status is not None and r.bench_status.value != "OK"
    return r.status.value + (f", bench {r.bench_status.value}" if skipped else "")


def render_all(records, *, bench: bool) -> None:
    from .results import print_table, wide_console

    columns = (("target", "left"), ("status", "left"), ("size MB", "right"), ("fidelity", "left"),
               ("export s", "right"), *((("min ms", "right"), ("p50 ms", "right")) if bench else ()),
               ("runtime", "left"), ("artifact", "left"))
    rows = []
    for r in records:
        row = [r.target, _status_text(r, bench), f"{r.size_bytes / 1e6:.2f}" if r.size_bytes else "-", r.fidelity_text,
               f"{r.export_s:.1f}" if r.export_s is not None else "-"]
        if bench:
            row += [f"{r.min_ms:.3f}" if r.min_ms is not None else "-",
                    f"{r.p50_ms:.3f}" if r.p50_ms is not None else "-"]
        rows.append((*row, r.runtime or "-", r.artifact or "-"))
    c = wide_console()  # target names and statuses never cut; on a narrow terminal the columns split
    print_table(f"{records[0].model if records else ''}: one row per target", columns, rows, keep=("target",),
                whole=("target", "status"), console=c)
    for r in records:
        for why in (r.reason, r.bench_reason):
            if why:
                c.print(f"{r.target}: {why}")


def _triple(text: str, flag: str) -> tuple[float, float, float]:
    from mobexport.exporter.errors import UsageError

    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise UsageError(f"{flag} takes three comma-separated numbers (R,G,B), got '{text}'")
    return vals


def _preprocessing(args):
    """User models only: the --mean/--std overrides of the default preprocessing (None: the default)."""
    if args.mean is None and args.std is None:
        return None
    from mobexport.exporter.errors import UsageError
    from mobexport.exporter.source import is_factory_ref

    if not is_factory_ref(args.model):
        raise UsageError("--mean/--std apply to user models (file.py:factory); zoo models keep their spec's")
    given = {"mean": (args.mean, "--mean"), "std": (args.std, "--std")}
    return {k: _triple(text, flag) for k, (text, flag) in given.items() if text is not None}


def _render(result) -> None:
    c = console()
    fid = result.fidelity
    m = fid.get("metrics", {})
    c.print(f"[bold]{result.model}[/bold] → {result.target}: {result.status.value}")
    rnd = result.manifest.get("random_weights")
    if rnd:
        c.print(f"  [yellow]{rnd['note']}[/yellow] (pass --weights FILE for your checkpoint)")
    else:
        c.print(f"  weights: {result.manifest.get('weights')}")
    src = result.manifest.get("model_source") or {}
    if src.get("kind") == "factory":
        c.print(f"  model: {src.get('class')} from {src.get('ref')} (sha256 {str(src.get('file_sha256'))[:12]})")
    if result.manifest.get("labels"):
        c.print(f"  labels: {len(result.manifest['labels'])} embedded")
    c.print(f"  artifact: {result.artifact} ({result.manifest.get('size_bytes', 0) / 1e6:.2f} MB)")
    c.print(f"  manifest: {result.manifest_path}")
    if m:
        c.print(f"  fidelity ({fid.get('policy_name') or fid.get('precision')}, {fid.get('inputs')}): "
                f"max_abs {m.get('max_abs', 0):.3g} (range {m.get('output_range', 0):.3g}), "
                f"cos {m.get('cosine', 0):.6f}, SQNR {m.get('sqnr_db', float('nan')):.1f} dB, top-1 agree "
                f"{m.get('top1_agreement', 0):.3f}")
    for f in fid.get("failures", []):
        notice(f"  {result.status.value}: {f}")
    if result.manifest.get("edgetpu_cpu_fallback"):
        c.print(f"  Edge TPU CPU fallback (estimate): {', '.join(result.manifest['edgetpu_cpu_fallback'])}")
    sens = result.manifest.get("sensitivity")
    if sens:
        c.print("  most int8-sensitive layers: " + ", ".join(
            f"{r['layer']} ({r['sqnr_db']} dB)" for r in sens["layers"][:5]))
