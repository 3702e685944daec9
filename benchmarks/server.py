"""HTTP server for the companion apps: artifacts out, results in (FastAPI app factory + uvicorn runner).

  GET  /api/v1/health
  GET  /api/v1/artifacts                                  manifests of everything exported under --artifacts
  GET  /api/v1/artifacts/{model}/{target}/manifest
  GET  /api/v1/artifacts/{model}/{target}/download        the file, or a zip of a bundle (.mlpackage)
  POST /api/v1/results                                    one result.schema.json record → 201 {"id": …}
  GET  /api/v1/results[?model=&target=&harness=&limit=&after=]   records (no raw samples), 1000 unless
                                                          limit= says otherwise; after=ID continues a listing
  GET  /api/v1/results/{id}                               one record with its raw samples

  GET  /, /results/{id}, /models/{m}, /regressions, /pareto, /artifacts, /api-docs, /login   the results web
                                                          pages (benchmarks/web; cookie login where a token is set)
  GET  /openapi.json                                      the API's OpenAPI document (no /docs page: it loads
                                                          its scripts from a CDN)

With a token set, every endpoint, /openapi.json included, needs ``Authorization: Bearer <token>`` (401
otherwise). A request from another web origin (an ``Origin`` header naming another site) is refused with 403, and
so is, without a token, one addressed to a host name other than 127.0.0.1/localhost (DNS rebinding); a POST not
declared ``application/json`` is refused with 415 (what a web page could send cross-site without a preflight). A
POST body over 4 MiB is refused with 413 before it is read in full, one not received within the body timeouts
with 408; malformed JSON → 400; a schema violation → 422 with the reason. Parsing, validation and database
work run in worker threads, never on the event loop. A bundle is zipped once per version and the zip kept for
the server's lifetime. A record is stored in one transaction or not at all. Binds 127.0.0.1 unless told
otherwise, and any other host requires a token.
"""

# No ``from __future__ import annotations``: FastAPI resolves the endpoints' annotations (Request), which are
# imported inside functions, at definition time.
import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
import socket
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mobexport.benchmarks.results import BenchmarkResult, PayloadError
from mobexport.benchmarks.store import open_store
from mobexport.exporter.errors import UsageError

# 4 MiB: a record with result.schema.json's largest run count (100,000 samples, its samples_ms maxItems and runs
# maximum, the apps' MAX_RUNS) written at full double precision is about 2 MB; 1 MiB refused ~100,000-sample posts.
MAX_BODY = 4 << 20
MAX_MANIFEST = 1 << 20
PAGE = 1000  # results per listing unless ?limit= says otherwise; ?after=ID continues
MAX_LIMIT = 100_000
MAX_ID = 2 ** 31 - 1  # the id column is a 32-bit integer on PostgreSQL
BODY_IDLE_TIMEOUT = 10.0  # seconds a POST body may stall between two chunks → 408
BODY_TIMEOUT = 60.0  # seconds for a whole POST body (4 MiB at ~70 KiB/s) → 408
_NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
ERRORS = {400: "malformed request or name", 401: "missing or wrong token", 403: "cross-origin or foreign host",
          404: "no such artifact or result", 408: "request body not received in time",
          413: "body over the size limit", 415: "body not application/json",
          422: "record does not follow result.schema.json"}
MANIFEST = "manifest.json"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the server beyond loopback without a token."""
    if host not in LOOPBACK and not token:
        raise UsageError(f"refusing to bind {host} without --token: anyone on the network could write results",
                         hint="pass --token SECRET (clients send 'Authorization: Bearer SECRET')")


def _valid_names(model: str, target: str) -> bool:
    """Folder names an export can have: no hidden, empty, ``..`` or path-like names."""
    return bool(_SAFE_NAME.match(model) and _SAFE_NAME.match(target)) and ".." not in model + target


def _servable(root: Path, model: str, target: str) -> tuple[Path, dict[str, Any]] | None:
    """(artifact path, manifest) when ``root/model/target`` is a finished export this server may hand out, else
    None. Refused: hidden folders (an export's staging or replaced folder), anything resolving outside ``root``,
    a manifest that is a link, over 1 MiB, not a JSON object, or naming another model/target than its folder,
    and an artifact that is missing or outside its folder."""
    if not _valid_names(model, target):
        return None
    folder = (root / model / target).resolve()
    mf = folder / MANIFEST
    if not folder.is_relative_to(root) or mf.is_symlink() or not mf.is_file() or mf.stat().st_size > MAX_MANIFEST:
        return None
    try:
        manifest = json.loads(mf.read_bytes())
    except (OSError, ValueError):
        return None  # a half-written or foreign file is not an artifact
    if not isinstance(manifest, dict) or (manifest.get("model"), manifest.get("target")) != (model, target):
        return None
    name = manifest.get("artifact")
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        return None
    path = (folder / name).resolve()
    return (path, manifest) if path.is_relative_to(folder) and path.exists() else None


def list_manifests(root: Path) -> list[dict[str, Any]]:
    """The manifests of every export under ``root`` that ``resolve_artifact`` would serve."""
    root = Path(root).resolve()
    found = (_servable(root, d.parent.name, d.name) for d in sorted(root.glob("*/*")) if d.is_dir())
    return [hit[1] for hit in found if hit is not None]


def resolve_artifact(root: Path, model: str, target: str) -> tuple[Path, dict[str, Any]]:
    """(artifact path, manifest) for ``root/model/target``; 400 for a name that is not one, 404 for anything
    ``_servable`` refuses."""
    from fastapi import HTTPException

    if not _valid_names(model, target):
        raise HTTPException(400, "invalid model or target name")
    hit = _servable(Path(root).resolve(), model, target)
    if hit is None:
        raise HTTPException(404, f"no exported artifact {model}/{target}")
    return hit


def _bundle_files(folder: Path) -> list[Path]:
    """The regular files of a bundle, in a fixed order (links are left out: they could point anywhere)."""
    return [f for f in sorted(folder.rglob("*")) if f.is_file() and not f.is_symlink()]


class BundleCache:
    """Zips of bundle artifacts (``.mlpackage`` folders), each made once per artifact version and kept on disk
    in a private temporary folder removed when the server's process ends. A version is the bundle's path, its
    manifest and every file's name, size and mtime: a new export of the same model/target is a new zip (and the
    old one is deleted). Concurrent requests for the same bundle wait for the one zip being written."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mobexport-bundles-")
        self.folder = Path(self._tmp.name)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def zip_of(self, bundle: Path, manifest: dict[str, Any]) -> Path:
        files = _bundle_files(bundle)
        version = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode())
        for f in files:
            st = f.stat()
            version.update(f"\0{f.relative_to(bundle)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        stem = hashlib.sha256(str(bundle).encode()).hexdigest()[:24]
        path = self.folder / f"{stem}-{version.hexdigest()[:24]}.zip"
        with self._guard:
            lock = self._locks.setdefault(stem, threading.Lock())
        with lock:
            if not path.exists():
                self._write(bundle, files, path)
                for old in self.folder.glob(f"{stem}-*.zip"):
                    if old != path:
                        old.unlink(missing_ok=True)  # an earlier version; a download still sending it keeps it open
        return path

    def _write(self, bundle: Path, files: list[Path], path: Path) -> None:
        fd, part = tempfile.mkstemp(suffix=".part", dir=self.folder)
        try:
            with open(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in files:
                    zf.write(f, Path(bundle.name) / f.relative_to(bundle))
            os.replace(part, path)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise


def _check_origin(request, *, loopback_only: bool) -> None:
    """403 for what a web page in the user's browser could send: a request whose ``Origin`` is another site
    (the apps and ``bench --post`` send none), and, on a server without a token (loopback only), a request
    addressed to any other host name: a DNS-rebound page reaches 127.0.0.1 under its own name."""
    from fastapi import HTTPException

    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/").lower() != f"{request.url.scheme}://{host}".lower():
        raise HTTPException(403, "cross-origin requests are refused")
    if loopback_only and _host_name(host) not in LOOPBACK:
        raise HTTPException(403, f"this server answers only to 127.0.0.1/localhost, not '{_host_name(host)[:64]}'")


def _host_name(host: str) -> str:
    """``Host`` header without its port (``[::1]:8765`` → ``::1``)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _require_json(request) -> None:
    """415 unless the body is declared JSON: a form or ``text/plain`` is what a web page can post cross-site
    without asking first (a CORS "simple request")."""
    from fastapi import HTTPException

    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, "send the record as Content-Type: application/json")


async def _read_limited(request, limit: int, timeouts: tuple[float, float] = (BODY_IDLE_TIMEOUT, BODY_TIMEOUT)) -> bytes:
    """The body, refused with 413 past ``limit`` bytes and with 408 when a chunk takes more than ``timeouts[0]``
    seconds to come or the whole body more than ``timeouts[1]`` (a client that stalls mid-body would otherwise
    hold its connection forever)."""
    import asyncio

    from fastapi import HTTPException
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"request body over {limit} bytes")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts[1]
    chunks = request.stream().__aiter__()
    body = bytearray()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), min(timeouts[0], deadline - loop.time()))
        except StopAsyncIteration:
            return bytes(body)
        except asyncio.TimeoutError:
            raise HTTPException(408, f"request body not received in time ({len(body)} bytes in)",
                                headers={"Connection": "close"}) from None
        except ClientDisconnect:
            raise HTTPException(400, "client disconnected before the body was complete") from None
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body over {limit} bytes")


def create_app(db_url: str | None = None, *, token: str | None = None, artifacts_dir: str | Path = "exports",
               max_body: int = MAX_BODY, page: int = PAGE,
               body_timeouts: tuple[float, float] = (BODY_IDLE_TIMEOUT, BODY_TIMEOUT)):
    """The app over the store at ``db_url``. ``body_timeouts``: (seconds between two chunks of a POST body,
    seconds for the whole body), past either → 408."""
    from fastapi import Depends, FastAPI, HTTPException, Request

    store = open_store(db_url)

    def auth(request: Request) -> None:
        _check_origin(request, loopback_only=token is None)
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})

    # No /docs or /redoc: FastAPI's pages load their scripts and styles from a CDN (nothing offline, and a third
    # party's code next to the token). The OpenAPI document is a route like the others, behind the same checks.
    app = FastAPI(title="mobexport results server", version="1", dependencies=[Depends(auth)],
                  responses=_errors(401, 403), docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.bundles = BundleCache()

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "schema_version": store.version, "results": store.count()}

    _artifact_routes(app, Path(artifacts_dir))
    _result_routes(app, store, max_body, page, body_timeouts)
    from mobexport.benchmarks.web import add_web_routes  # results pages (/, /results/ID, ...): benchmarks/web

    add_web_routes(app, store, Path(artifacts_dir), token=token)
    return app


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for our error answers: ``{"detail": "reason"}``."""
    body = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    return {code: {"description": ERRORS[code], "content": {"application/json": {"schema": body}}}
            for code in codes}


def _result_body() -> dict[str, Any]:
    """POST /results' request body in the OpenAPI document: result.schema.json itself (the fuzz tests and
    client generators read it from there)."""
    from mobexport.benchmarks.results import load_schema

    schema = {k: v for k, v in load_schema().items() if not k.startswith("$")}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _artifact_routes(app, root: Path) -> None:
    from fastapi.responses import FileResponse

    @app.get("/api/v1/artifacts")
    def artifacts() -> list[dict[str, Any]]:
        return list_manifests(root)

    @app.get("/api/v1/artifacts/{model}/{target}/manifest", responses=_errors(400, 404))
    def manifest(model: str, target: str) -> dict[str, Any]:
        return resolve_artifact(root, model, target)[1]

    @app.get("/api/v1/artifacts/{model}/{target}/download", responses={
        200: {"description": "the artifact file, or a zip of a bundle",
              "content": {"application/octet-stream": {}, "application/zip": {}}}, **_errors(400, 404)})
    def download(model: str, target: str):  # a worker thread: zipping a bundle never holds up the event loop
        path, manifest = resolve_artifact(root, model, target)
        if path.is_dir():
            return FileResponse(app.state.bundles.zip_of(path, manifest), filename=path.name + ".zip",
                                media_type="application/zip")
        return FileResponse(path, filename=path.name, media_type="application/octet-stream")


def _store_record(store, body: bytes) -> dict[str, Any]:
    """Parse, validate and store one posted record (in a worker thread: a 100,000-sample record takes long enough
    to parse and check that, on the event loop, every other request would wait for it)."""
    from fastapi import HTTPException

    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, a 4300+ digit number, deep nesting
        raise HTTPException(400, f"malformed JSON: {str(e)[:200]}") from None
    try:
        result = BenchmarkResult.from_dict(payload)  # result.schema.json and what the database can hold
        rid = store.add(result)
    except PayloadError as e:
        raise HTTPException(422, e.reason) from None
    return {"id": rid, "model": result.model, "target": result.target, "harness": result.harness,
            "min_ms": result.min_ms}


def _result_routes(app, store, max_body: int, page: int, body_timeouts: tuple[float, float]) -> None:
    import anyio.to_thread
    from fastapi import HTTPException, Query, Request
    from fastapi import Path as FastPath

    # One posted record is parsed, checked and stored at a time: that work is CPU under the one interpreter lock,
    # so more threads would not finish it sooner, only make every other request wait longer for the lock.
    one_at_a_time = anyio.CapacityLimiter(1)

    @app.post("/api/v1/results", status_code=201, openapi_extra=_result_body(),
              responses=_errors(400, 408, 413, 415, 422))
    async def post_result(request: Request) -> dict[str, Any]:
        _require_json(request)
        body = await _read_limited(request, max_body, body_timeouts)
        return await anyio.to_thread.run_sync(_store_record, store, body, limiter=one_at_a_time)

    @app.get("/api/v1/results")
    def results(model: str | None = Query(None, max_length=128, pattern=_NO_NUL),
                target: str | None = Query(None, max_length=32, pattern=_NO_NUL),
                harness: str | None = Query(None, max_length=16, pattern=_NO_NUL),
                limit: int = Query(page, ge=1, le=MAX_LIMIT),
                after: int | None = Query(None, ge=0, le=MAX_ID)) -> list[dict[str, Any]]:
        return [r.to_dict() for r in store.query(model=model, target=target, harness=harness, limit=limit,
                                                 after=after)]

    @app.get("/api/v1/results/{result_id}", responses=_errors(404))
    def result(result_id: int = FastPath(ge=1, le=MAX_ID)) -> dict[str, Any]:
        try:
            return store.get(result_id).to_dict(samples=True)
        except UsageError:  # its message names the database: the client learns only that the id is unknown
            raise HTTPException(404, f"no result with id {result_id}") from None


def listen_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound to ``host:port`` (0 = any free port), bound before anything else starts, so a port in use
    or an address this machine does not have is a UsageError (exit 2) naming it, not a server that dies after
    start-up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns Nagle off (TCP_NODELAY) only on sockets that name it, and with Nagle
    # on every small answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT port is free; a listening one is not
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} is in use on {host}: another server is listening there",
                             hint="pass --port N with a free port, or stop the other server") from None
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                         hint="pass --host with an address of this machine (default 127.0.0.1)") from None
    return sock


def run(app, sock: socket.socket, *, log_level: str = "info") -> None:
    """Serve ``app`` on ``sock`` (from ``listen_socket``) until interrupted."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextlib.contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run a real uvicorn server in a background thread; yields its base URL. The socket is bound before the
    server starts (port 0 = any free port), so there is no race for the port."""
    import time

    import uvicorn

    sock = listen_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def results_endpoint(url: str) -> str:
    """Accept a server's base URL or the full results endpoint."""
    url = url.rstrip("/")
    return url if url.endswith("/api/v1/results") else url + "/api/v1/results"


def check_server(url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
    """Make sure ``url`` is a mobexport server that accepts ``token`` (GET /api/v1/health) before any long work
    whose results would be posted there; UsageError otherwise (the token is never part of the message)."""
    import httpx

    health = results_endpoint(url).removesuffix("/results") + "/health"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.get(health, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        raise UsageError(f"cannot reach mobexport server at {url}: {e}") from e
    if r.status_code == 401:
        raise UsageError(f"server at {url} refused the token" if token else f"server at {url} requires a token",
                         hint="pass --token T (or set MOBEXPORT_TOKEN) with the token 'mobexport serve' was given")
    if r.status_code != 200:
        raise UsageError(f"{health} answered {r.status_code}: is this a mobexport server?")


def post_result(url: str, record: dict[str, Any], *, token: str | None = None, timeout: float = 30.0) -> int:
    """POST one record to a mobexport server; returns the stored id. Raises UsageError with the server's
    reason on 4xx, and on connection failures."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.post(results_endpoint(url), json=record, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        raise UsageError(f"cannot post result to {url}: {e}") from e
    if r.status_code != 201:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise UsageError(f"server refused the result ({r.status_code}): {str(detail)[:500]}")
    return int(r.json()["id"])
