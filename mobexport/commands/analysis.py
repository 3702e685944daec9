"""``mobexport roofline``, ``mobexport predict`` and ``mobexport lut build``."""

from __future__ import annotations

import argparse

from ._common import console, print_json


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    if name == "roofline":
        p.add_argument("models", nargs="+", metavar="NAME", help="one or more models (several → ranking)")
        p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
        p.add_argument("--rp", default="0,5,10,25,50,100,200,500", help="ridge points (MACs/byte), comma-separated")
        p.add_argument("--peak-macs", type=float, help="peak MAC/s of a concrete machine (with --peak-bw)")
        p.add_argument("--peak-bw", type=float, help="peak memory bandwidth in bytes/s (with --peak-macs)")
        p.add_argument("--host", action="store_true", help="measure this host's peaks (GEMM + copy) and use them")
        p.add_argument("--plot", metavar="FILE.png", help="write roofline / op-type / ranking figure")
        p.add_argument("--json", action="store_true")
    elif name == "predict":
        p.add_argument("model", metavar="NAME")
        p.add_argument("--lut", required=True, metavar="FILE", help="lookup table JSON from `mobexport lut build`")
        p.add_argument("--json", action="store_true")
    else:  # lut
        sub = p.add_subparsers(dest="lut_command", metavar="ACTION", required=True)
        b = sub.add_parser("build", help="time every distinct block of the given models on a runtime")
        b.add_argument("models", nargs="+", metavar="NAME")
        b.add_argument("--runtime", default="onnxruntime", metavar="NAME",
                       help="a registered runtime of this host (converters/runtimes; default onnxruntime)")
        b.add_argument("--target", metavar="TARGET",
                       help="the target every block is converted to by its converter, e.g. onnx-fp32, tflite-fp32, "
                            "tflite-w8a8 (default: the runtime's first format, its converter's default scheme)")
        b.add_argument("--calibration", metavar="DIR", help="int8 targets: photos the blocks' inputs come from "
                                                            "(default: make assets)")
        b.add_argument("--in-process", action="store_true",
                       help="time each block in this process instead of a fresh worker process")
        b.add_argument("--out", required=True, metavar="FILE", help="lookup table JSON to write (merged if exists)")
        b.add_argument("--runs", type=int, default=200)
        b.add_argument("--warmup", type=int, default=10)
        b.add_argument("--threads", type=int, default=1)
        b.add_argument("--db", help="also store the table in this results database")
        b.add_argument("--json", action="store_true")


def run(args) -> int:
    return {"roofline": _roofline, "predict": _predict, "lut": _lut}[args.command](args)


def _parse_rps(text: str) -> list[float]:
    from mobexport.exporter.errors import UsageError

    try:
        rps = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--rp must be comma-separated numbers, got {text!r}") from None
    if not rps or any(r < 0 for r in rps):
        raise UsageError(f"--rp needs non-negative ridge points, got {text!r}")
    return rps


def _roofline(args) -> int:
    from mobexport.exporter.errors import UsageError

    rps = _parse_rps(args.rp)
    if (args.peak_macs is None) != (args.peak_bw is None):
        raise UsageError("--peak-macs and --peak-bw go together")
    import mobexport
    from mobexport.benchmarks.analysis import roofline

    peak_macs, peak_bw, host = args.peak_macs or 1e12, args.peak_bw, None
    if args.host:
        from mobexport.benchmarks.analysis.hostcal import measure

        host = measure()
        peak_macs, peak_bw = host.peak_macs, host.peak_bw
    reports = {}
    for name in args.models:
        spec = mobexport.get_spec(name)
        deploy = mobexport.reparameterize(mobexport.create_model(spec.name))
        reports[spec.name] = roofline.analyze(deploy, spec.input_size, args.precision, rps, peak_macs, peak_bw)
    if args.plot:
        from mobexport.benchmarks.analysis.plots import roofline_figure

        roofline_figure(reports, args.plot)
    if args.json:
        out = next(iter(reports.values())) if len(reports) == 1 else {
            "models": reports, "ranking": roofline.rank_models(reports)}
        if host:
            (out if len(reports) == 1 else out).setdefault("host", host.to_dict())
        print_json(out)
        return 0
    _render_roofline(reports, host)
    return 0


def _render_roofline(reports, host) -> None:
    from rich.table import Table

    first = next(iter(reports.values()))
    t = Table(title=f"roofline ({first['precision']}), predicted ms at PeakMACs={first['peak_macs']:.3g}/s")
    t.add_column("model")
    t.add_column("MACs")
    t.add_column("MB moved")
    for s in first["sweep"]:
        t.add_column(f"RP {s['rp']:g}", justify="right")
    if "bound_ms" in first:
        t.add_column("bound ms", justify="right")
    for name, rep in reports.items():
        row = [name, f"{rep['macs'] / 1e6:.1f}M", f"{rep['bytes'] / 1e6:.1f}"]
        row += [f"{s['predicted_ms']:.3f}" for s in rep["sweep"]]
        if "bound_ms" in rep:
            row.append(f"{rep['bound_ms']:.3f}")
        t.add_row(*row)
    c = console()
    c.print(t)
    if host:
        c.print(f"host: {host.peak_macs / 1e9:.1f} GMAC/s, {host.peak_bw / 1e9:.1f} GB/s, "
                f"ridge point {host.ridge_point:.1f} MACs/byte ({host.threads} threads)")


def _predict(args) -> int:
    from mobexport.benchmarks.analysis import lut

    table = lut.LatencyTable.load(args.lut)
    pred = lut.predict(args.model, table)
    if args.json:
        print_json(pred)
        return 0
    console().print(f"{pred['model']}: predicted {pred['predicted_ms']:.3f} ms ({table.target}) on {table.runtime} "
                    f"({pred['blocks']} blocks, {pred['missing']} missing from the table)")
    return 0 if not pred["missing"] else 2  # a usage/data problem (blocks not in the table), not a MISMATCH (1)


def _lut(args) -> int:
    from mobexport.benchmarks.analysis import lut

    from ._common import StepPrinter, backend_output

    printer = StepPrinter()  # one line per block on stderr; the converters' own output hidden unless -v
    with backend_output(printer):
        table = lut.build(args.models, runtime=args.runtime, out=args.out, runs=args.runs, warmup=args.warmup,
                          threads=args.threads, target=args.target, in_process=args.in_process,
                          calibration_dir=args.calibration, progress=printer)
    if args.db:
        lut.store_table(table, args.db)
    if args.json:
        print_json(table.to_dict())
    else:
        console().print(f"{len(table.entries)} blocks ({table.target}) timed on {table.runtime} → {args.out}")
    return 0

