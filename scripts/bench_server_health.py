"""Health of the results server under load: `mobexport serve` started as its own process on 127.0.0.1 over a
SQLite file (and PostgreSQL with --pg URL or $MOBEXPORT_TEST_PG_URL), driven by concurrent HTTP clients.

    python scripts/bench_server_health.py [--posts 2000] [--clients 4] [--exports 200] [--pg URL] [--before COMMIT]

Per database: POST throughput and latency (each record has 100 raw samples, like the apps'), rows stored
against rows posted (none lost, none doubled), GET listing / one record / artifact listing latency with the
database and export folder full, how fast refusals answer (401, 415, 413 before the body is read), and the
server process's resident memory before and after (a leak shows as growth).

Then the event loop, on SQLite, for this code and, with ``--before COMMIT``, for that older commit (its tree
from ``git archive``, installed with ``pip install --no-deps --target`` into a temporary folder and put first on
the server's PYTHONPATH; the server runs outside the checkout, so the editable install is not used):
``GET /api/v1/health`` latency while four clients upload 100,000-sample records, the time to the first byte of
a bundle (.mlpackage) download (first, again, four at once) with the server's peak temporary disk, and how many
of 50 connections that stop mid-body are answered and closed within 20 s. Writes results/server_health.md.
A benchmark, not a test: the numbers depend on the machine's load. 127.0.0.1 only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "benchmarks" / "schema" / "examples" / "android_result.json"
TOKEN = "bench-health-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_exports(root: Path, n: int) -> None:
    for i in range(n):
        d = root / f"model_{i:04d}" / "onnx-fp32"
        d.mkdir(parents=True)
        (d / "model.onnx").write_bytes(b"\0" * 1024)
        (d / "manifest.json").write_text(json.dumps({"model": d.parent.name, "target": "onnx-fp32",
                                                     "artifact": "model.onnx"}))


class Server:
    """`mobexport serve` in a child process; waits for /health."""

    def __init__(self, db: str, artifacts: Path, *, pythonpath: str | None = None, tmpdir: Path | None = None):
        """``pythonpath``: run the mobexport installed there (an older commit) instead of this checkout's;
        ``tmpdir``: the server's TMPDIR (to measure its temporary files)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile()  # the server's stderr (a pipe nobody reads could fill and block it)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TMPDIR")}
        env["MOBEXPORT_TOKEN"] = TOKEN
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        if tmpdir:
            env["TMPDIR"] = str(tmpdir)
        self.proc = subprocess.Popen([sys.executable, "-m", "mobexport", "serve", "--db", db, "--port", str(self.port),
                                      "--artifacts", str(artifacts)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=self._log, cwd=tempfile.gettempdir())  # no ./mobexport shadowing
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", headers=AUTH, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        self._log.seek(0)
        raise RuntimeError(f"server did not start: {self._log.read().decode()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def timed(client: httpx.Client, method: str, url: str, **kw) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = client.request(method, url, **kw)
    return (time.perf_counter() - t0) * 1e3, r.status_code


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def post_load(url: str, posts: int, clients: int) -> dict:
    record = json.loads(EXAMPLE.read_text())
    body = json.dumps(record).encode()
    headers = {**AUTH, "Content-Type": "application/json"}

    def worker(n: int) -> list[tuple[float, int]]:
        with httpx.Client(timeout=60) as c:
            return [timed(c, "POST", f"{url}/api/v1/results", content=body, headers=headers) for _ in range(n)]

    shares = [posts // clients + (1 if i < posts % clients else 0) for i in range(clients)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        done = [x for part in ex.map(worker, shares) for x in part]
    wall = time.perf_counter() - t0
    lat = [ms for ms, _ in done]
    return {"posts": posts, "clients": clients, "wall_s": wall, "per_s": posts / wall,
            "ok": sum(code == 201 for _, code in done), "errors": sum(code != 201 for _, code in done),
            "p50": statistics.median(lat), "p99": pct(lat, 0.99), "max": max(lat)}


def read_latencies(url: str, reps: int) -> dict:
    with httpx.Client(timeout=60, headers=AUTH) as c:
        first = c.get(f"{url}/api/v1/results", params={"limit": 1}).json()[0]["id"]
        out = {}
        for name, path, params in (("GET /results (a page: 1000 rows)", "/api/v1/results", None),
                                   ("GET /results?limit=100", "/api/v1/results", {"limit": 100}),
                                   ("GET /results?limit=100000 (every row)", "/api/v1/results", {"limit": 100_000}),
                                   ("GET /results/{id} (100 samples)", f"/api/v1/results/{first}", None),
                                   ("GET /artifacts", "/api/v1/artifacts", None),
                                   ("GET /health", "/api/v1/health", None)):
            lat = [timed(c, "GET", url + path, params=params)[0] for _ in range(reps)]
            out[name] = (statistics.median(lat), pct(lat, 0.9))
    return out


def refusal_latencies(url: str, reps: int) -> dict:
    big = b"[" + b"1.0," * 1_300_000 + b"1.0]"  # ~5.2 MB, over the 4 MiB limit
    cases = {"401 wrong token": {"headers": {"Authorization": "Bearer wrong", "Content-Type": "application/json"},
                                 "content": b"{}"},
             "415 text/plain": {"headers": {**AUTH, "Content-Type": "text/plain"}, "content": b"{}"},
             "413 5.2 MB body": {"headers": {**AUTH, "Content-Type": "application/json"}, "content": big},
             "422 invalid record": {"headers": {**AUTH, "Content-Type": "application/json"}, "content": b"{}"}}
    out = {}
    with httpx.Client(timeout=60) as c:
        for name, kw in cases.items():
            res = [timed(c, "POST", f"{url}/api/v1/results", **kw) for _ in range(reps)]
            out[name] = (statistics.median(ms for ms, _ in res), sorted({code for _, code in res}))
    return out


# ---------------------------------------------------------------- the event loop, before and after


def install_commit(commit: str, dest: Path) -> str:
    """Install ``commit``'s mobexport (its own files, no dependencies: the venv's serve them) into ``dest``;
    returns the folder to put first on PYTHONPATH."""
    src, site = dest / "src", dest / "site"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    return str(site)


def big_record(n: int) -> bytes:
    """android_result.json with ``n`` raw samples (and statistics that agree): a record of the largest run count the apps
    post (100,000: result.schema.json's limit), well under the 4 MiB body limit."""
    from dataclasses import asdict

    from mobexport.benchmarks.results import compute_stats

    samples = [round(1.0 + (i % 97) / 100, 2) for i in range(n)]
    record = {**json.loads(EXAMPLE.read_text()), "runs": n, "samples_ms": samples, **asdict(compute_stats(samples))}
    body = json.dumps(record, separators=(",", ":")).encode()
    assert len(body) < 1 << 20, len(body)
    return body


def health_under_load(url: str, body: bytes, clients: int, uploads: int, probes: int, cap_s: float) -> dict:
    """``probes`` GET /health, 50 ms apart, while ``clients`` threads keep POSTing ``body`` (each at most ``uploads``
    times; probing stops after ``cap_s`` seconds or when the uploads are done)."""
    headers = {**AUTH, "Content-Type": "application/json"}
    posted: list[tuple[float, int]] = []
    stop = threading.Event()

    def uploader() -> None:
        with httpx.Client(timeout=600) as c:
            for _ in range(uploads):
                if stop.is_set():
                    return
                posted.append(timed(c, "POST", f"{url}/api/v1/results", content=body, headers=headers))

    with httpx.Client(headers=AUTH, timeout=600) as c:
        idle = [timed(c, "GET", f"{url}/api/v1/health")[0] for _ in range(50)]
        threads = [threading.Thread(target=uploader) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the uploads are under way
        lat: list[float] = []
        deadline = time.monotonic() + cap_s
        while len(lat) < probes and any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            lat.append(timed(c, "GET", f"{url}/api/v1/health")[0])
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
    return {"idle_p50": statistics.median(idle), "p50": statistics.median(lat), "p90": pct(lat, 0.9),
            "max": max(lat), "probes": len(lat), "ok": sum(code == 201 for _, code in posted),
            "other": sum(code != 201 for _, code in posted), "upload_p50_s": statistics.median(ms for ms, _ in posted) / 1e3}


def make_bundle(root: Path, mib: int) -> None:
    d = root / "big_bundle" / "coreml-fp16"
    (d / "big.mlpackage" / "Data").mkdir(parents=True)
    (d / "big.mlpackage" / "Manifest.json").write_text("{}")
    with open(d / "big.mlpackage" / "Data" / "weights.bin", "wb") as fh:  # incompressible, like fp16 weights
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))
    (d / "manifest.json").write_text(json.dumps({"model": "big_bundle", "target": "coreml-fp16",
                                                 "artifact": "big.mlpackage"}))


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2 ** 20


def first_byte_s(url: str) -> float:
    """Seconds to the first byte of the bundle's download (the rest is read and dropped)."""
    t0 = time.perf_counter()
    with httpx.Client(headers=AUTH, timeout=600) as c, c.stream(
            "GET", f"{url}/api/v1/artifacts/big_bundle/coreml-fp16/download") as r:
        chunks = r.iter_bytes()
        next(chunks)
        first = time.perf_counter() - t0
        for _ in chunks:
            pass
    return first


def bundle_downloads(url: str, tmpdir: Path) -> dict:
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], folder_mb(tmpdir))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        first, again = first_byte_s(url), first_byte_s(url)
        with ThreadPoolExecutor(4) as ex:
            four = list(ex.map(lambda _: first_byte_s(url), range(4)))
    finally:
        done.set()
        sampler.join()
    return {"first": first, "again": again, "four_max": max(four), "peak_tmp_mb": peak[0]}


def stalled_bodies(url: str, n: int = 50, wait_s: float = 20.0) -> dict:
    """``n`` connections send their headers (1000 body bytes declared) and 10 bytes, then nothing: how many are
    answered (and with what) and closed by the server within ``wait_s`` seconds."""
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    head = (f"POST /api/v1/results HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\": ").encode()
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(head)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, {"got": b"", "closed_at": None})
    closed: list[dict] = []
    while len(closed) < n and time.monotonic() - t0 < wait_s:
        for key, _ in sel.select(timeout=0.2):
            try:
                chunk = key.fileobj.recv(4096)
            except OSError:
                chunk = b""
            key.data["got"] += chunk
            if not chunk:
                key.data["closed_at"] = time.monotonic() - t0
                closed.append(key.data)
                sel.unregister(key.fileobj)
                key.fileobj.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    codes = sorted({d["got"][9:12].decode() or "none" for d in closed})
    return {"n": n, "closed": len(closed), "open": n - len(closed), "codes": codes, "wait_s": wait_s,
            "median_s": statistics.median(d["closed_at"] for d in closed) if closed else None}


def loop_health(label: str, pythonpath: str | None, tmp: Path, args) -> dict:
    """The three event-loop measurements on one server (SQLite), this checkout's code or an installed commit."""
    artifacts, tmpdir = tmp / f"exports-{label}", tmp / f"tmp-{label}"
    make_bundle(artifacts, args.bundle_mib)
    tmpdir.mkdir()
    server = Server(str(tmp / f"loop-{label}.db"), artifacts, pythonpath=pythonpath, tmpdir=tmpdir)
    try:
        load = health_under_load(server.url, big_record(args.samples), args.load_clients, args.uploads, args.probes,
                                 args.cap_s)
        bundles = bundle_downloads(server.url, tmpdir)
        stalled = stalled_bodies(server.url)
    finally:
        server.stop()
    return {"label": label, "load": load, "bundles": bundles, "stalled": stalled}


def run_one(db: str, label: str, args, artifacts: Path) -> dict:
    server = Server(db, artifacts)
    try:
        rss0 = rss_mb(server.proc.pid)
        with httpx.Client(headers=AUTH) as c:
            before = c.get(f"{server.url}/api/v1/health").json()["results"]
        load = post_load(server.url, args.posts, args.clients)
        rss1 = rss_mb(server.proc.pid)
        load2 = post_load(server.url, args.posts, args.clients)  # same again: memory should stay flat
        rss2 = rss_mb(server.proc.pid)
        with httpx.Client(headers=AUTH) as c:
            stored = c.get(f"{server.url}/api/v1/health").json()["results"] - before
        reads = read_latencies(server.url, args.reps)
        refusals = refusal_latencies(server.url, args.reps)
        rss3 = rss_mb(server.proc.pid)
    finally:
        server.stop()
    return {"label": label, "load": [load, load2], "stored": stored, "rss": [rss0, rss1, rss2, rss3],
            "reads": reads, "refusals": refusals}


def render_loop(loops: list[dict], args) -> list[str]:
    lines = ["", f"## The event loop (SQLite): /health while {args.load_clients} clients upload {args.samples:,}-sample "
             "records", "", f"Each client posts a {args.samples:,}-sample record (~"
             f"{len(big_record(args.samples)) / 1e3:.0f} kB) again and again (at most {args.uploads} times); /health "
             f"is asked {args.probes} times, 50 ms apart, while they do (at most {args.cap_s:.0f} s). Before: the "
             "record was parsed and validated on the event loop; after: in a worker thread, one record at a time, "
             "with the per-sample checks in one loop.", "",
             "| code | /health idle p50 ms | /health under load p50 ms | p90 ms | max ms | probes | uploads 201 | other "
             "| upload p50 s |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {x['label']} | {x['load']['idle_p50']:.1f} | {x['load']['p50']:.1f} | {x['load']['p90']:.1f} | "
              f"{x['load']['max']:.1f} | {x['load']['probes']} | {x['load']['ok']} | {x['load']['other']} | "
              f"{x['load']['upload_p50_s']:.2f} |" for x in loops]
    lines += ["", f"## Bundle downloads ({args.bundle_mib} MiB .mlpackage, incompressible): seconds to the first byte",
              "", "| code | first request | again | four at once (slowest) | server's peak temporary disk MB |",
              "|---|---|---|---|---|"]
    lines += [f"| {x['label']} | {x['bundles']['first']:.2f} | {x['bundles']['again']:.2f} | "
              f"{x['bundles']['four_max']:.2f} | {x['bundles']['peak_tmp_mb']:.0f} |" for x in loops]
    lines += ["", "## Stalled request bodies: connections that send headers and 10 of 1000 declared bytes, then nothing",
              "", "| code | connections | answered and closed | still open | status | median s to close |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {x['label']} | {x['stalled']['n']} | {x['stalled']['closed']} | {x['stalled']['open']} after "
              f"{x['stalled']['wait_s']:.0f} s | {', '.join(x['stalled']['codes']) or '-'} | "
              + (f"{x['stalled']['median_s']:.1f}" if x['stalled']['median_s'] is not None else "-") + " |"
              for x in loops]
    return lines


def render(runs: list[dict], args, loops: list[dict] | None = None) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = ["# Results server health: `mobexport serve` under load (generated by scripts/bench_server_health.py)",
             "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, {platform.machine()} "
             f"{os.cpu_count()} CPUs (shared), Python {platform.python_version()}, httpx clients in threads, the "
             f"server a separate process on 127.0.0.1 with a token. Command: `python scripts/bench_server_health.py "
             f"--posts {args.posts} --clients {args.clients} --exports {args.exports}"
             + (f" --before {args.before}" if args.before else "") + "`", "",
             "## POST /api/v1/results (android_result.json, 100 raw samples)", "",
             "| database | round | posts | clients | req/s | p50 ms | p99 ms | max ms | 201 | other | rows stored |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        for i, ld in enumerate(r["load"], 1):
            lines.append(f"| {r['label']} | {i} | {ld['posts']} | {ld['clients']} | {ld['per_s']:.0f} | "
                         f"{ld['p50']:.1f} | {ld['p99']:.1f} | {ld['max']:.1f} | {ld['ok']} | {ld['errors']} | "
                         + (f"{r['stored']} of {sum(x['posts'] for x in r['load'])}" if i == 2 else "") + " |")
    lines += ["", "## Server memory (resident, MB)", "", "| database | start | after round 1 | after round 2 | end |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['label']} | " + " | ".join(f"{x:.0f}" for x in r["rss"]) + " |" for r in runs]
    lines += ["", f"## Reads with the database full ({args.reps} requests each; {args.exports} export folders)", "",
              "| database | request | p50 ms | p90 ms |", "|---|---|---|---|"]
    lines += [f"| {r['label']} | {name} | {p50:.1f} | {p90:.1f} |" for r in runs for name, (p50, p90) in
              r["reads"].items()]
    lines += ["", "## Refusals (median ms; status codes seen)", "", "| database | request | median ms | status |",
              "|---|---|---|---|"]
    lines += [f"| {r['label']} | {name} | {ms:.1f} | {codes} |" for r in runs for name, (ms, codes) in
              r["refusals"].items()]
    lines += render_loop(loops, args) if loops else []
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=2000, help="POSTs per round (two rounds per database)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    ap.add_argument("--exports", type=int, default=200, help="export folders served")
    ap.add_argument("--reps", type=int, default=50, help="requests per read/refusal measurement")
    ap.add_argument("--pg", default=os.environ.get("MOBEXPORT_TEST_PG_URL"), help="PostgreSQL URL (empty database)")
    ap.add_argument("--before", metavar="COMMIT", help="also measure the event loop on this older commit")
    ap.add_argument("--samples", type=int, default=100_000, help="raw samples per uploaded record (event loop)")
    ap.add_argument("--load-clients", type=int, default=4, help="uploading clients (event loop)")
    ap.add_argument("--uploads", type=int, default=60, help="most records each uploading client posts (event loop)")
    ap.add_argument("--probes", type=int, default=40, help="/health requests under load (event loop)")
    ap.add_argument("--cap-s", type=float, default=150.0, help="longest /health probing under load, seconds")
    ap.add_argument("--bundle-mib", type=int, default=64, help="size of the bundle downloaded (event loop)")
    ap.add_argument("--out", default=str(ROOT / "results" / "server_health.md"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mx-health-") as tmp:
        artifacts = Path(tmp) / "exports"
        make_exports(artifacts, args.exports)
        runs = [run_one(str(Path(tmp) / "health.db"), "SQLite", args, artifacts)]
        if args.pg:
            runs.append(run_one(args.pg, "PostgreSQL", args, artifacts))
        loops = []
        if args.before:
            short = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True,
                                   text=True, check=True).stdout.strip()
            site = install_commit(args.before, Path(tmp) / "before")
            loops.append(loop_health(f"before: {short}", site, Path(tmp), args))
        loops.append(loop_health("after: this checkout", None, Path(tmp), args))
    Path(args.out).write_text(render(runs, args, loops))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
