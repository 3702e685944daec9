"""Health of the results server under load: `mobexport serve` started as its own process on 127.0.0.1 over a
SQLite file (and PostgreSQL with --pg URL or $MOBEXPORT_TEST_PG_URL), driven by concurrent HTTP clients.

    python scripts/bench_server_health.py [--posts 2000] [--clients 4] [--exports 200] [--pg URL]

Per database: POST throughput and latency (each record has 100 raw samples, like the apps'), rows stored
against rows posted (none lost, none doubled), GET listing / one record / artifact listing latency with the
database and export folder full, how fast refusals answer (401, 415, 413 before the body is read), and the
server process's resident memory before and after (a leak shows as growth). Writes results/server_health.md.
A benchmark, not a test: the numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
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

    def __init__(self, db: str, artifacts: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MOBEXPORT_TOKEN": TOKEN}
        self.proc = subprocess.Popen([sys.executable, "-m", "mobexport", "serve", "--db", db, "--port", str(self.port),
                                      "--artifacts", str(artifacts)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", headers=AUTH, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.proc.stderr.read().decode()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


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
    big = b"[" + b"1.0," * 400_000 + b"1.0]"  # ~1.6 MB, over the 1 MiB limit
    cases = {"401 wrong token": {"headers": {"Authorization": "Bearer wrong", "Content-Type": "application/json"},
                                 "content": b"{}"},
             "415 text/plain": {"headers": {**AUTH, "Content-Type": "text/plain"}, "content": b"{}"},
             "413 1.6 MB body": {"headers": {**AUTH, "Content-Type": "application/json"}, "content": big},
             "422 invalid record": {"headers": {**AUTH, "Content-Type": "application/json"}, "content": b"{}"}}
    out = {}
    with httpx.Client(timeout=60) as c:
        for name, kw in cases.items():
            res = [timed(c, "POST", f"{url}/api/v1/results", **kw) for _ in range(reps)]
            out[name] = (statistics.median(ms for ms, _ in res), sorted({code for _, code in res}))
    return out


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


def render(runs: list[dict], args) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = ["# Results server health: `mobexport serve` under load (generated by scripts/bench_server_health.py)",
             "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, {platform.machine()} "
             f"{os.cpu_count()} CPUs (shared), Python {platform.python_version()}, httpx clients in threads, the "
             f"server a separate process on 127.0.0.1 with a token. Command: `python scripts/bench_server_health.py "
             f"--posts {args.posts} --clients {args.clients} --exports {args.exports}`", "",
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
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=2000, help="POSTs per round (two rounds per database)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    ap.add_argument("--exports", type=int, default=200, help="export folders served")
    ap.add_argument("--reps", type=int, default=50, help="requests per read/refusal measurement")
    ap.add_argument("--pg", default=os.environ.get("MOBEXPORT_TEST_PG_URL"), help="PostgreSQL URL (empty database)")
    ap.add_argument("--out", default=str(ROOT / "results" / "server_health.md"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mx-health-") as tmp:
        artifacts = Path(tmp) / "exports"
        make_exports(artifacts, args.exports)
        runs = [run_one(str(Path(tmp) / "health.db"), "SQLite", args, artifacts)]
        if args.pg:
            runs.append(run_one(args.pg, "PostgreSQL", args, artifacts))
    Path(args.out).write_text(render(runs, args))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
