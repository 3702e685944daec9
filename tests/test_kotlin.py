"""The Android kit (android_app/benchkit) compiled with kotlinc and its JUnit tests run on the JVM, here.

* kotlinc is the npm registry's ``kotlin-compiler`` (version pinned, archive sha256 checked, cached under
  .cache/kotlin by scripts/setup_kotlin.sh); JUnit 4 and org.json (Android's built-in JSON, compileOnly in Gradle)
  are Debian's ``junit4`` and ``libandroid-json-java``. The compiled classes are cached by a hash of the sources.
* ApiClientLiveTest runs against a real ``mobexport serve`` this module starts on a free 127.0.0.1 port with a token
  and one exported artifact: list, manifest, download with sha256, post (the largest run count), 401.
* The protocol test feeds the same sample list to the host's statistics (benchmarks/results.py) and the kit's and
  compares the two records.

The JUnit lines and counts are written to .cache/kotlin/junit-summary.txt, which ``make test`` prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "android_app" / "benchkit"
SETUP = ROOT / "scripts" / "setup_kotlin.sh"
CACHE = ROOT / ".cache" / "kotlin"
EXAMPLES = ROOT / "benchmarks" / "schema" / "examples"
ASSETS = ROOT / "android_app" / "app" / "src" / "androidTest" / "assets"
SUMMARY = CACHE / "junit-summary.txt"
JARS = {name: Path("/usr/share/java") / name for name in ("com.android.json.jar", "junit4.jar", "hamcrest-core.jar")}
TOKEN = "kotlin-live-token"
_COMPILED_NOW: list[Path] = []

pytestmark = pytest.mark.xdist_group("kotlin")


def _version() -> str:
    return re.search(r"^VERSION=(\S+)$", SETUP.read_text(), re.M).group(1)


def _kotlin_home() -> Path:
    home = CACHE / f"kotlinc-{_version()}"
    if not (home / "bin" / "kotlinc").is_file():
        pytest.skip(f"kotlinc {_version()} is not in {home.relative_to(ROOT)}: run scripts/setup_kotlin.sh "
                    "(make test does)")
    missing = [str(p) for p in JARS.values() if not p.is_file()]
    if missing or not shutil.which("java"):
        pytest.skip(f"missing {missing or 'java'}: apt-get install default-jre-headless junit4 libandroid-json-java")
    return home


def _sources() -> list[Path]:
    return sorted((KIT / "src" / "main").rglob("*.kt")) + sorted((KIT / "src" / "test").rglob("*.kt"))


@pytest.fixture(scope="module")
def kit_classes() -> Path:
    """benchkit's main and test sources compiled into one class folder (reused while the sources are unchanged)."""
    home = _kotlin_home()
    digest = hashlib.sha256(_version().encode())
    for src in _sources():
        digest.update(str(src.relative_to(KIT)).encode() + b"\0" + src.read_bytes() + b"\0")
    out = CACHE / "build" / digest.hexdigest()[:16]
    if not (out / ".complete").is_file():
        for stale in (CACHE / "build").glob("*"):  # builds of earlier sources
            shutil.rmtree(stale, ignore_errors=True)
        out.mkdir(parents=True)
        cmd = [str(home / "bin" / "kotlinc"), "-jvm-target", "17", "-nowarn", "-Werror",
               "-cp", os.pathsep.join(str(p) for p in JARS.values()), "-d", str(out), *map(str, _sources())]
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"kotlinc failed:\n{done.stdout}\n{done.stderr}"
        (out / ".complete").write_text(f"kotlinc {_version()}: {len(_sources())} files in {time.monotonic() - t0:.0f} s\n")
        _COMPILED_NOW.append(out)
    return out


def _classpath(classes: Path) -> str:
    return os.pathsep.join([str(classes), str(_kotlin_home() / "lib" / "kotlin-stdlib.jar"),
                            *map(str, JARS.values()), str(EXAMPLES)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """`mobexport serve` (the CLI, in its own process) with a token, serving the instrumented tests' tiny .tflite."""
    tmp = tmp_path_factory.mktemp("kotlin-live")
    folder = tmp / "exports" / "tiny_conv" / "tflite-fp32"
    folder.mkdir(parents=True)
    artifact = folder / "tiny_conv.tflite"
    shutil.copyfile(ASSETS / "tiny_conv.tflite", artifact)
    manifest = json.loads((ASSETS / "tiny_conv.manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "artifact": artifact.name}))
    port, db = _free_port(), tmp / "results.db"
    proc = subprocess.Popen([sys.executable, "-m", "mobexport", "serve", "--port", str(port), "--token", TOKEN,
                             "--db", str(db), "--artifacts", str(tmp / "exports")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"mobexport serve exited:\n{proc.stdout.read()}"
            try:
                if httpx.get(f"{url}/api/v1/artifacts", headers={"Authorization": f"Bearer {TOKEN}"}).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mobexport serve did not answer within 120 s"
            time.sleep(0.3)
        yield {"url": url, "artifact": artifact, "db": db}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _junit(classes: Path, server: dict) -> subprocess.CompletedProcess:
    props = [f"-Dmobexport.live.url={server['url']}", f"-Dmobexport.live.token={TOKEN}",
             f"-Dmobexport.live.artifact={server['artifact']}"]
    return subprocess.run(["java", *props, "-cp", _classpath(classes), "dev.mobexport.benchkit.KitTestRunnerKt",
                           str(classes)], capture_output=True, text=True, timeout=600)


def test_benchkit_compiles_and_its_junit_tests_pass(kit_classes, live_server):
    done = _junit(kit_classes, live_server)
    out = done.stdout + done.stderr
    compiled = (kit_classes / ".complete").read_text().strip()
    if not _COMPILED_NOW:
        compiled = f"{compiled} (earlier; these sources unchanged since)"
    SUMMARY.write_text(f"{compiled}\n{out}")
    summary = re.search(r"^junit: (\d+) run, (\d+) failed, (\d+) skipped \((\d+) classes\)$", out, re.M)
    assert summary, out
    run, failed, skipped, classes = map(int, summary.groups())
    assert (failed, skipped) == (0, 0), out
    assert done.returncode == 0, out
    passed = set(re.findall(r"^PASS (\w+\.\w+)$", out, re.M))
    assert len(passed) == run >= 40 and classes >= 8, out
    live = {p for p in passed if p.startswith("ApiClientLiveTest.")}
    assert live >= {"ApiClientLiveTest.listManifestAndDownloadWithSha256", "ApiClientLiveTest.wrongOrMissingTokenIs401",
                    "ApiClientLiveTest.postTheLargestRunCount",
                    "ApiClientLiveTest.aDownloadThatDoesNotMatchTheManifestIsRefusedAndRemoved",
                    "ApiClientLiveTest.pendingUploadsReachTheServerOnceItAcceptsThem"}, out
    # what the kit posted is in the server's database, as the host reads it back (100,000 samples included)
    r = httpx.get(f"{live_server['url']}/api/v1/results", headers={"Authorization": f"Bearer {TOKEN}"},
                  params={"model": "tiny_conv"})
    assert r.status_code == 200, r.text
    rows = r.json()["results"] if isinstance(r.json(), dict) else r.json()
    assert {row["harness"] for row in rows} == {"android_app"}
    assert {row["runs"] for row in rows} == {100_000, 3}


def _protocol_samples() -> list[float]:
    rng = random.Random(20)
    samples = [round(rng.lognormvariate(0.5, 0.3), 6) for _ in range(997)]
    return samples + [0.1, 0.1, 1e-9] + [rng.uniform(1.0, 2.0) for _ in range(3)]


def test_protocol_host_and_kit_build_the_same_record(kit_classes, tmp_path):
    from mobexport.benchmarks.results import BenchmarkResult, validate_payload

    samples = _protocol_samples()
    manifest = json.loads((ASSETS / "tiny_conv.manifest.json").read_text())
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    done = subprocess.run(["java", "-cp", _classpath(kit_classes), "dev.mobexport.benchkit.ProtocolFixtureKt",
                           str(tmp_path / "samples.json"), str(tmp_path / "manifest.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kit = json.loads(done.stdout)
    validate_payload(kit)
    host = BenchmarkResult.from_samples(
        samples, model=manifest["model"], weights=manifest["weights"], target=manifest["target"],
        artifact_sha256=manifest["sha256"], harness="android_app", device_model="Pixel 8 Pro", os="Android",
        os_version="15 (API 35)", chip="Google Tensor G3", runtime="litert", runtime_version="1.4.1",
        compute_unit="xnnpack", threads=4, input_shape=manifest["input"]["shape"], batch_size=1, warmup=20,
        runs=len(samples), load_ms=12.5, validation_status="OK", timestamp="2025-01-31T12:00:00Z").to_dict()
    assert kit == host  # bit for bit: the same floats, the same keys
    naive_mean = sum(samples) / len(samples)
    assert kit["mean_ms"] == pytest.approx(naive_mean)  # and the statistics are not trivially equal by accident
    assert kit["min_ms"] == 1e-9 and kit["p90_ms"] > kit["p50_ms"] > kit["min_ms"]
