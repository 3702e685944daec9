"""The runtime registry (converters/runtimes) and the benchmark worker (benchmarks/worker.py), on real
artifacts: a runtime dropped in as one file is selectable by ``bench --runtime`` and used; each artifact is
timed in its own spawned worker that has not imported torch; a worker killed mid-run, or one that hangs, is
RUN_FAILED with the reason while the other artifacts still run."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
import time

import pytest

from mobexport.benchmarks.harness import BenchConfig, bench_artifact, find_artifacts, run_benchmarks
from mobexport.cli import main
from mobexport.converters import get_converter, runtimes
from mobexport.exporter.errors import UnknownNameError, UsageError
from mobexport.exporter.status import Status
from tests.plugins import drop_in
from tests.test_harness import MODEL
from tests.test_harness import exports as _exports

exports = _exports  # real onnx-fp32 and tflite-fp32 exports (one per module)

# onnxruntime with graph optimizations off, beside the default: the whole of a new runtime
NOOPT_RUNTIME = '''
from mobexport.converters.runtimes import register_runtime
from mobexport.converters.runtimes.onnxruntime_cpu import OnnxRuntimeCPU


@register_runtime
class OnnxRuntimeNoOpt(OnnxRuntimeCPU):
    name = "onnxruntime-noopt"
    formats = ("onnx",)
    rank = 50

    def load(self, artifact_path, manifest=None, threads=None, options=None):
        runner = super().load(artifact_path, manifest, threads, {"graph_optimization": "disabled"})
        runner.runtime = self.name
        runner.compute_unit = "cpu (graph optimizations off)"
        return runner
'''


@pytest.fixture
def extra_runtime(tmp_path, monkeypatch):
    """``onnxruntime_noopt.py`` dropped into a folder of the runtimes package's path: nothing else changes."""
    module = drop_in(runtimes, "onnxruntime_noopt.py", NOOPT_RUNTIME, tmp_path, monkeypatch)
    yield "onnxruntime-noopt"
    sys.modules.pop(module, None)


def test_registry_defaults_and_errors():
    assert runtimes.default_runtime("onnx").name == "onnxruntime"
    assert runtimes.default_runtime("tflite").name == "ai-edge-litert"
    assert runtimes.default_runtime("tensorrt").name == "onnxruntime"  # the engine's ONNX
    assert runtimes.default_runtime("coreml").name == "coremltools"
    assert get_converter("onnx").runtime().name == "onnxruntime"
    if sys.platform != "darwin":
        avail = runtimes.get_runtime("coremltools").available()
        assert not avail.ok and "macOS" in avail.reason and avail.install_hint
    assert runtimes.get_runtime("onnxruntime").version() not in ("", "unknown")
    with pytest.raises(UnknownNameError):
        runtimes.get_runtime("onnxruntme")
    with pytest.raises(UsageError, match="does not run format 'tflite'"):
        runtimes.choose("tflite", "onnxruntime")
    with pytest.raises(TypeError, match="registered twice"):
        runtimes.register_runtime(type("Other", (runtimes.Runtime,), {"name": "onnxruntime", "formats": ("onnx",)}))


def test_runtime_added_as_one_file_is_selectable_and_used(extra_runtime, exports, tmp_path, capsys):
    assert [r.name for r in runtimes.runtimes_for("onnx")] == ["onnxruntime", extra_runtime]
    assert runtimes.default_runtime("onnx").name == "onnxruntime"  # the default stays the default
    onnx_dir = exports / MODEL / "onnx-fp32"
    code = main(["bench", str(onnx_dir), "--runtime", extra_runtime, "--runs", "20", "--warmup", "1",
                 "--no-store", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["runtime"] for r in rows] == [extra_runtime]
    assert rows[0]["compute_unit"] == "cpu (graph optimizations off)" and rows[0]["runs"] == 20
    # the same artifact through the converter (what validation and eval use) with the new runtime
    art = find_artifacts(onnx_dir)[0]
    runner = get_converter("onnx").load(art, runtime=extra_runtime)
    default = get_converter("onnx").load(art)
    try:
        sess = runner.session.get_session_options()
        assert str(sess.graph_optimization_level).endswith("ORT_DISABLE_ALL")
        assert str(default.session.get_session_options().graph_optimization_level).endswith("ORT_ENABLE_ALL")
    finally:
        runner.close()
        default.close()
    # a runtime that does not run the format is a usage error, before anything is timed
    assert main(["bench", str(exports / MODEL / "tflite-fp32"), "--runtime", extra_runtime, "--no-store"]) == 2


def test_each_artifact_runs_in_its_own_worker_without_torch(exports):
    outs = run_benchmarks([str(exports)], BenchConfig(runs=20, warmup=1))
    assert [o.bench_status for o in outs] == [Status.OK, Status.OK]
    workers = [o.extra["worker"] for o in outs]
    assert len({w["pid"] for w in workers} | {os.getpid()}) == 3  # two fresh processes, neither this one
    assert all(w["torch_imported"] is False for w in workers)
    assert "torch" in sys.modules  # this process has it: the worker's memory is not this process'
    for o, w in zip(outs, workers, strict=True):
        assert 0 < o.result.peak_rss_mb < 1000 and w["rss_growth_at_load_mb"] > 0
        assert "own worker process" in o.result.notes
    inproc = bench_artifact(find_artifacts(exports / MODEL / "onnx-fp32")[0], BenchConfig(runs=5, warmup=0,
                                                                                           in_process=True))
    assert inproc.extra["worker"]["pid"] == os.getpid() and "in-process" in inproc.result.notes


def _kill_first_worker(killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set() and not killed:
        for p in multiprocessing.active_children():
            if p.name.startswith("mobexport-bench-"):
                os.kill(p.pid, signal.SIGKILL)
                killed.append(p.pid)
                return
        time.sleep(0.005)


def test_killed_worker_is_run_failed_and_the_run_goes_on(exports):
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_worker, args=(killed, stop), daemon=True)
    killer.start()
    try:
        outs = run_benchmarks([str(exports)], BenchConfig(runs=200, warmup=1))
    finally:
        stop.set()
        killer.join()
    assert killed, "the test never saw a worker to kill"
    assert outs[0].bench_status is Status.RUN_FAILED and outs[0].result is None
    assert "worker killed by SIGKILL" in outs[0].reason
    assert outs[1].bench_status is Status.OK and outs[1].result.runs == 200


def test_hung_worker_is_run_failed_after_the_timeout(exports, capsys):
    t0 = time.monotonic()
    code = main(["bench", str(exports / MODEL / "onnx-fp32"), "--runs", "10000000", "--timeout", "3",
                 "--no-store", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert time.monotonic() - t0 < 60
    assert code == 4 and rows[0]["bench_status"] == "RUN_FAILED" and "no result within 3 s" in rows[0]["reason"]
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("mobexport-bench-")]


def test_lut_builder_times_blocks_through_the_registry(extra_runtime, exports, capsys):
    from mobexport.benchmarks.analysis import lut
    from mobexport.benchmarks.harness import BenchConfig
    from mobexport.converters import resolve_target

    path = exports / MODEL / "onnx-fp32" / f"{MODEL}.onnx"
    target, shape = resolve_target("onnx-fp32"), (1, 3, 224, 224)
    for name in ("onnxruntime", extra_runtime):  # the default, and the runtime dropped in for this test
        mn, p50 = lut.time_block(path, target, shape, BenchConfig(runs=5, warmup=1, runtime=name))
        assert 0 < mn <= p50
    assert lut.resolve(extra_runtime)[1].id == "onnx-fp32"  # --runtime takes it too: the registry's names
    assert main(["lut", "build", MODEL, "--runtime", "ai-edge-litert", "--target", "onnx-fp32", "--out",
                 str(exports / "t.json")]) == 2
    assert "does not run format 'onnx'" in capsys.readouterr().err


def test_per_layer_profile_is_written_beside_the_artifact(exports, capsys):
    code = main(["bench", str(exports), "--profile", "--runs", "10", "--warmup", "1", "--no-store", "--json"])
    rows = {r["target"]: r for r in json.loads(capsys.readouterr().out)}
    assert code == 0 and {r["bench_status"] for r in rows.values()} == {"OK"}
    path = exports / MODEL / "onnx-fp32" / "profile.onnxruntime.json"
    assert f"per-layer profile: {path}" in rows["onnx-fp32"]["notes"]
    prof = json.loads(path.read_text())
    assert prof["runtime"] == "onnxruntime" and prof["runs"] == 21 and len(prof["layers"]) > 10
    assert "Conv" in {layer["op"] for layer in prof["layers"]}
    assert all(layer["runs"] == 21 and 0 <= layer["min_us"] <= layer["mean_us"] for layer in prof["layers"])
    # the layers' kernel times add up to no more than the timed round trip (the profiler's own cost aside)
    assert sum(layer["min_us"] for layer in prof["layers"]) / 1000 < 3 * rows["onnx-fp32"]["max_ms"]
    assert "ai-edge-litert offers no per-layer profiler" in rows["tflite-fp32"]["notes"]
    assert not list((exports / MODEL / "onnx-fp32").glob("ort_profile*"))  # the raw trace is not left behind


def test_litert_says_its_python_interpreter_has_no_op_profiler(exports):
    """ai-edge-litert's Python Interpreter offers no per-op profiling (checked on its API: no method or native
    wrapper call names a profiler; the only 'profiling' argument concerns a C++ profiler Python cannot read).
    The runtime says exactly that — in the record's notes and from read_profile — instead of a profile. If a
    LiteRT release adds one, this fails and read_profile should read it."""
    from ai_edge_litert import interpreter as tfl
    from ai_edge_litert._pywrap_litert_interpreter_wrapper import InterpreterWrapper

    api = [m for cls in (tfl.Interpreter, InterpreterWrapper) for m in dir(cls) if "profil" in m.lower()]
    assert api == [], api
    import inspect

    assert [p for p in inspect.signature(tfl.Interpreter.__init__).parameters if "profil" in p] == [
        "experimental_force_delegate_node_profiling"]
    rt = runtimes.get_runtime("ai-edge-litert")
    assert rt.profile_options("/tmp") is None
    note = rt.profile_note()
    assert note.startswith("ai-edge-litert offers no per-layer profiler: its Python Interpreter")
    assert rt.version() in note and "benchmark_model --enable_op_profiling" in note
    runner = rt.load(exports / MODEL / "tflite-fp32" / f"{MODEL}.tflite", {}, 1)
    with pytest.raises(NotImplementedError, match="no op-profiling option or method"):
        rt.read_profile(runner)
    out = bench_artifact(find_artifacts(exports / MODEL / "tflite-fp32")[0],
                         BenchConfig(runs=3, warmup=0, in_process=True, profile=True))
    assert out.bench_status is Status.OK and note in out.result.notes
    assert not list((exports / MODEL / "tflite-fp32").glob("profile.*"))


def test_roofline_measured_against_bound_from_a_profile(exports, capsys):
    """The profile `bench --profile` writes, set against the roofline bound of the same deploy model."""
    from mobexport.benchmarks.analysis import roofline
    from mobexport.converters.pipeline import build_zoo_model
    from mobexport.exporter.passes.reparameterize import reparameterize

    assert main(["bench", str(exports / MODEL / "onnx-fp32"), "--profile", "--runs", "5", "--no-store",
                 "--json"]) == 0
    capsys.readouterr()
    profile = json.loads((exports / MODEL / "onnx-fp32" / "profile.onnxruntime.json").read_text())
    model, _ = build_zoo_model(MODEL, seed=0)
    # a machine far faster than one CPU thread: 1 TMAC/s, 100 GB/s; what was measured here cannot beat it
    report = roofline.analyze(reparameterize(model), (3, 224, 224), peak_macs=1e12, peak_bw=1e11)
    view = roofline.measured_vs_bound(report, profile)
    assert view["runtime"] == "onnxruntime"
    for k in ("mac", "elementwise"):
        assert view[k]["bound_ms"] > 0 and view[k]["measured_ms"] > 0
    assert view["mac"]["measured_over_bound"] > 1
    assert view["total"]["measured_ms"] == pytest.approx(view["mac"]["measured_ms"] + view["elementwise"]["measured_ms"])
    with pytest.raises(ValueError, match="peak_bw"):
        roofline.measured_vs_bound({k: v for k, v in report.items() if k != "peak_bw"}, profile)


def test_every_runtime_refuses_options_it_does_not_take(tmp_path):
    from mobexport.converters.runtimes import get_runtime, names

    for name in names():
        with pytest.raises(ValueError, match=f"{name} options: .*unknown \\['no_such_option'\\]"):
            get_runtime(name).load(tmp_path / "x", {}, 1, {"no_such_option": 1})
    with pytest.raises(ValueError, match="graph_optimization: one of"):
        get_runtime("onnxruntime").load(tmp_path / "x.onnx", {}, 1, {"graph_optimization": "max"})


def test_a_runtime_without_load_cannot_register():
    from mobexport.converters.runtimes import Runtime, register_runtime

    class NoLoad(Runtime):
        name, formats = "no-load", ("onnx",)

    with pytest.raises(TypeError, match="abstract"):
        register_runtime(NoLoad)


# ---------------------------------------------------------------- one timing loop in the code base

_TIMERS = {"perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns", "elapsed_time", "Event"}
_RUNS = {"invoke", "run", "execute_async_v3", "execute_async_v2", "execute_v2", "predict", "run_by_index",
         "run_by_name"}


def _timing_loops(source: str) -> set[str]:
    """Functions holding a loop that both reads a clock and runs a model (names bound to ``time.perf_counter_ns``
    or ``runner.invoke`` inside the function count as those)."""
    import ast

    def called(c):
        return c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", None)

    found = set()
    for fn in (n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        alias = {}
        for a in (n for n in ast.walk(fn) if isinstance(n, ast.Assign)):
            targets = [e for t in a.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
            values = a.value.elts if isinstance(a.value, ast.Tuple) else [a.value]
            for t, v in zip(targets, values, strict=False):
                if isinstance(t, ast.Name) and isinstance(v, (ast.Attribute, ast.Name)):
                    alias[t.id] = v.attr if isinstance(v, ast.Attribute) else v.id
        for loop in (n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.While))):
            names = {alias.get(n, n) for n in map(called, (c for c in ast.walk(loop) if isinstance(c, ast.Call)))}
            if names & _TIMERS and names & _RUNS:
                found.add(fn.name)
    return found


def test_one_timing_loop_in_the_code_base():
    """bench, the lookup tables and TensorRT engines time with the runtime layer's loop (the worker's, and a
    converter's at export); no package module has a loop of its own that reads a clock around a model run (scripts/ may: the overhead script's bare loop is
    the reference the harness is measured against)."""
    from pathlib import Path

    root = Path(__file__).parents[1]
    hits = {f"{p.relative_to(root)}:{fn}" for d in ("converters", "benchmarks", "exporter", "quantization",
                                                    "mobexport") for p in sorted((root / d).rglob("*.py"))
            for fn in _timing_loops(p.read_text())}
    assert hits == {"converters/runtimes/_timing.py:time_round_trips"}
    # the check finds the kind of loop it forbids: the TensorRT converter's own CUDA-event loop it replaced
    old = '''
def time_engine(ctx, stream, runs):
    times = []
    for i in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        ctx.execute_async_v3(stream.cuda_stream)
        end.record(stream)
        end.synchronize()
        times.append(start.elapsed_time(end))
'''
    assert _timing_loops(old) == {"time_engine"}
