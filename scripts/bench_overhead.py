"""Harness overhead: `mobexport bench`'s min-of-1000 vs a bare runtime loop in the same worker process, for ONNX
Runtime and LiteRT, alternating 5 repeats of each; plus the spread of the min over the repeats. The harness
reports its progress as for the bar on a terminal (between blocks of runs, down a pipe).

Per target, one fresh spawned worker (as `mobexport bench` uses) runs both, alternately: the harness's own
measurement (``benchmarks.worker.measure``: the registry's runtime, warm-up, the timed round trips) and a
bare loop written against the runtime's API. Neither pays for process start-up; both share that process.

    python scripts/bench_overhead.py [--model mobileone_s0] [--runs 1000] [--repeats 5] [--out exports]

Writes results/bench_overhead.md. A benchmark, not a test: the numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bare_ort(path: Path, x: np.ndarray, runs: int, warmup: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(warmup + 1):
        sess.run(None, feed)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        best = min(best, time.perf_counter_ns() - t0)
    return best / 1e6


def bare_litert(path: Path, x: np.ndarray, runs: int, warmup: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    for _ in range(warmup + 1):
        it.set_tensor(i, x)
        it.invoke()
        it.get_tensor(o)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        it.set_tensor(i, x)
        it.invoke()
        it.get_tensor(o)
        best = min(best, time.perf_counter_ns() - t0)
    return best / 1e6


def ensure_exports(model: str, out: Path) -> dict[str, Path]:
    from mobexport.converters.pipeline import export

    dirs = {}
    for target in ("onnx-fp32", "tflite-fp32"):
        d = out / model / target
        if not (d / "manifest.json").is_file():
            export(model, target, out_dir=out, options={"random_bn_seed": 0})
        dirs[target] = d
    return dirs


def pair(job: dict, bare_name: str, repeats: int) -> tuple[list[float], list[float]]:
    """In the worker: ``repeats`` alternations of the harness's measurement and the bare loop (min ms each)."""
    import multiprocessing as mp

    from mobexport.benchmarks.worker import measure

    bare = {"bare_ort": bare_ort, "bare_litert": bare_litert}[bare_name]
    h, b = [], []
    reader, writer = mp.Pipe(duplex=False)  # the progress reports go down a pipe, as in `mobexport bench`

    def report(done: int, runs: int) -> None:
        writer.send(("runs", done, runs))
        while reader.poll():  # the parent's side, drained here so the pipe never fills
            reader.recv()

    for _ in range(repeats):  # alternate, so drifts in machine load hit both alike
        out = measure(job, report)
        if "error" in out:
            raise RuntimeError(out["reason"])
        h.append(min(out["samples"]))
        b.append(bare(Path(job["artifact_path"]), np.ascontiguousarray(job["x"]), job["runs"], job["warmup"]))
    return h, b


def main() -> None:
    import multiprocessing as mp

    from mobexport.benchmarks.harness import BenchConfig, artifact_job, find_artifacts

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobileone_s0")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "exports"))
    a = ap.parse_args()
    rows = []
    for target, d in ensure_exports(a.model, Path(a.out)).items():
        job = artifact_job(find_artifacts(d)[0], BenchConfig(runs=a.runs, warmup=a.warmup, in_process=True))
        with mp.get_context("spawn").Pool(1) as pool:  # one fresh worker per target, as `mobexport bench`
            h, b = pool.apply(pair, (job, "bare_ort" if target.startswith("onnx") else "bare_litert", a.repeats))
        rows.append((target, h, b))
    lines = [f"# Harness overhead: {a.model}, min of {a.runs} round trips, 1 thread, {a.repeats} repeats",
             "", "Harness and bare loop alternate in the same fresh worker process (spawned, as `mobexport bench` "
             "times every artifact); the worker imports the runtime and numpy, not torch. The harness runs with "
             "its progress reports on (a report down a pipe between blocks of runs, at most every 100 ms, as "
             "for the bar on a terminal).",
             "", "| target | harness min (median of repeats) | bare loop min | harness/bare − 1 | "
             "spread of harness min (max−min)/median | spread of bare min | within ±2 % |", "|---|---|---|---|---|---|---|"]
    for target, h, b in rows:
        mh, mb = statistics.median(h), statistics.median(b)
        lines.append(f"| {target} | {mh:.3f} ms | {mb:.3f} ms | {100 * (mh / mb - 1):+.2f} % | "
                     f"{100 * (max(h) - min(h)) / mh:.1f} % | {100 * (max(b) - min(b)) / mb:.1f} % | "
                     f"{'yes' if abs(mh / mb - 1) <= 0.02 else 'NO'} |")
    lines += ["", "raw mins (ms):"] + [f"- {t}: harness {[round(v, 3) for v in h]}, bare {[round(v, 3) for v in b]}"
                                       for t, h, b in rows]
    text = "\n".join(lines) + "\n"
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "bench_overhead.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
