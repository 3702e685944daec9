"""The results web pages of ``mobexport serve``: server-rendered HTML with inline SVG charts and one stylesheet
shipped in the package (no script, nothing from a CDN), over the same store as the API.

  GET  /                          results: filter by model, target, device, runtime, harness; sort; search
  GET  /results/{id}              one result: statistics, histogram and trace of the raw samples, provenance,
                                  fidelity, manifest (``/results/{id}.json``: the record with its samples)
  GET  /models/{model}            targets x devices, the fastest and the regressions marked
  GET  /regressions[?baseline=ID] each configuration's latest run against the previous one or a pinned baseline
  GET  /pareto[?y=top1|size]      latency against measured top-1 or artifact size
  GET  /artifacts                 the exports the apps are served, with manifests and downloads
  GET  /api-docs                  the API, from its OpenAPI document (offline)
  GET  /login, POST /login, POST /logout

Access follows the API's rules: a request from another origin is refused (403), and without a token so is one
addressed to another host than 127.0.0.1/localhost. With a token (any bind but loopback needs one) a page needs
the token as ``Authorization: Bearer`` or the session cookie the login form sets; a browser without it is sent to
the login form. The form is CSRF-safe: a POST must come from this origin (``Origin``/``Sec-Fetch-Site``), be a
urlencoded form of at most 4 KiB, and carry the random value the form was served with in a cookie (double
submit). The cookie holds an HMAC of the token, not the token; it is HttpOnly and SameSite. No GET changes data.
The pages are routes outside the OpenAPI document (not part of the API).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from . import data, pages

SESSION_COOKIE = "mobexport_session"
CSRF_COOKIE = "mobexport_login_csrf"
MAX_FORM = 4096
MAX_PARAM = 256  # characters of one query parameter
SHOWN = 1000  # rows of the results table
WRONG_TOKEN_DELAY = 1.0  # seconds before a wrong token is answered (slows guessing)
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = {"style.css": "text/css", "favicon.svg": "image/svg+xml"}  # shipped as package data
PARETO_AXES = {"top1": "measured top-1 (%)", "size": "artifact size (MB)"}

__all__ = ["add_web_routes"]


def session_value(token: str) -> str:
    """What the session cookie holds: an HMAC of the token (a new token ends every session)."""
    return hmac.new(token.encode(), b"mobexport web session v1", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _safe_next(path: str) -> str:
    """A local path to return to after login; anything else (another site, ``//host``) is ``/``."""
    ok = path.startswith("/") and not path.startswith(("//", "/\\")) and path.isprintable() and len(path) < 1024
    return path if ok else "/"


class _Web:
    def __init__(self, app, store, root: Path, token: str | None):
        self.app, self.store, self.root, self.token = app, store, root, token
        self.session = session_value(token) if token else None
        folder = resources.files(__name__) / "static"
        self.static = {name: ((folder / name).read_bytes(), media) for name, media in STATIC.items()}

    # -- access ---------------------------------------------------------------------------------------------
    def authed(self, request) -> bool:
        if self.token is None:
            return True
        if _same(request.headers.get("authorization", ""), f"Bearer {self.token}"):
            return True
        return _same(request.cookies.get(SESSION_COOKIE, ""), self.session)

    def check(self, request) -> None:
        """403 for a cross-origin or (without a token) foreign-host request; for a POST also one a browser
        marks as sent by another site."""
        from starlette.exceptions import HTTPException

        from mobexport.benchmarks.server import _check_origin

        _check_origin(request, loopback_only=self.token is None)
        if request.method == "POST" and request.headers.get("sec-fetch-site", "same-origin") not in (
                "same-origin", "none"):
            raise HTTPException(403, "cross-site form posts are refused")

    def html(self, status: int, title: str, body: str, *, active: str = "", request=None, cookies=()):
        """A page; its navigation and log-out button only for a visitor who may see the pages."""
        from starlette.responses import HTMLResponse

        seen = request is not None and self.authed(request)
        resp = HTMLResponse(pages.layout(title, body, active=active, logout=seen and self.token is not None,
                                         nav=seen or self.token is None), status, headers=HEADERS)
        for name, value, path in cookies:
            resp.set_cookie(name, value, path=path, httponly=True, samesite="strict")
        return resp

    def page(self, handler, *, public: bool = False):
        """An endpoint: access checks, then ``handler(request)`` in a worker thread (it reads the database),
        which returns a Response or (title, body, active). Errors become an HTML page with their status."""
        import anyio.to_thread
        from starlette.exceptions import HTTPException
        from starlette.responses import RedirectResponse

        from mobexport.exporter.errors import UsageError

        async def endpoint(request):
            try:
                self.check(request)
                if not public and not self.authed(request):
                    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse("/login?" + urlencode({"next": nxt}), 303, headers=HEADERS)
                for k, v in request.query_params.multi_items():
                    if len(k) > MAX_PARAM or len(v) > MAX_PARAM:
                        raise HTTPException(400, "query parameter too long")
                out = await anyio.to_thread.run_sync(handler, request)
            except HTTPException as ex:
                return self.html(ex.status_code, "Error", pages.error_page(ex.status_code, ex.detail),
                                 request=request)
            except UsageError as ex:
                return self.html(400, "Error", pages.error_page(400, str(ex)), request=request)
            if isinstance(out, tuple):
                title, body, active = out
                return self.html(200, title, body, active=active, request=request)
            return out

        return endpoint

    # -- data -----------------------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        return [data.row_of(s) for s in self.store.query()]

    def manifests_by_sha(self) -> dict[str, dict[str, Any]]:
        from mobexport.benchmarks.server import list_manifests

        return {m["sha256"]: m for m in list_manifests(self.root) if isinstance(m.get("sha256"), str)}

    # -- pages ----------------------------------------------------------------------------------------------
    def results(self, request):
        q = request.query_params
        rows = self.rows()
        slower = {v.latest["id"] for v in data.regressions(rows) if v.flag == "slower"}
        for r in rows:
            r["regressed"] = r["id"] in slower
        filters = {f: q.get(f, "") for f in data.FILTERS}
        sort = q.get("sort", "id")
        if sort not in data.COLUMNS:
            sort = "id"
        desc = q.get("desc", "1" if "sort" not in q else "0") == "1"
        shown = data.sort_rows(data.filter_rows(rows, filters, q.get("q", "")), sort, desc)
        body = pages.results_page(shown, len(rows), data.choices(rows), filters, q.get("q", ""), sort, desc, SHOWN)
        return "Results", body, "results"

    def result(self, request):
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        from mobexport.benchmarks.server import MAX_ID
        from mobexport.benchmarks.store.accuracy import latest_accuracy
        from mobexport.exporter.errors import UsageError

        raw = request.path_params["rid"]
        as_json = raw.endswith(".json")
        rid = raw.removesuffix(".json")
        if not rid.isascii() or not rid.isdigit() or not 0 < int(rid) <= MAX_ID:
            raise HTTPException(404, f"no result with id {rid[:20]}")
        try:
            rec = self.store.get(int(rid)).result.to_dict(samples=True)
        except UsageError:
            raise HTTPException(404, f"no result with id {rid}") from None
        if as_json:
            return JSONResponse(rec, headers=HEADERS)
        manifest = self.manifests_by_sha().get(rec["artifact_sha256"])
        link = (f'/artifacts/{manifest["model"]}/{manifest["target"]}/download' if manifest else None)
        acc = latest_accuracy(self.store, [rec["artifact_sha256"]]).get(rec["artifact_sha256"])
        title = f'#{rid} {rec["model"]} {rec["target"]} on {rec["device_model"]}'
        return title, pages.result_page(int(rid), rec, manifest, acc, link), ""

    def model(self, request):
        from starlette.exceptions import HTTPException

        name = request.path_params["model"]
        rows = [r for r in self.rows() if r["model"] == name]
        if not rows:
            raise HTTPException(404, f"no result of model {name[:128]}")
        targets, devices, cells = data.model_grid(rows, data.regressions(rows))
        return name, pages.model_page(name, targets, devices, cells, len(rows)), ""

    def regressions(self, request):
        from starlette.exceptions import HTTPException

        pins = request.query_params.getlist("baseline")
        if not all(p.isascii() and p.isdigit() for p in pins):
            raise HTTPException(400, "baseline= takes result ids")
        model = request.query_params.get("model", "")
        rows = [r for r in self.rows() if not model or r["model"] == model]
        baselines = {int(p) for p in pins}
        return "Regressions", pages.regressions_page(data.regressions(rows, baselines), baselines, model), \
            "regressions"

    def pareto(self, request):
        from starlette.exceptions import HTTPException

        from mobexport.benchmarks.store.accuracy import latest_accuracy

        verdicts = data.regressions(self.rows())
        acc = {sha: rec for sha, rec in latest_accuracy(self.store, [v.latest["sha256"] for v in verdicts]).items()
               if isinstance(rec.get("artifact_top1"), float)}
        y = request.query_params.get("y", "top1" if acc else "size")
        if y not in PARETO_AXES:
            raise HTTPException(400, f"y= takes one of {', '.join(PARETO_AXES)}")
        if y == "top1":
            points = data.pareto_points(verdicts, lambda r: 100 * acc[r["sha256"]]["artifact_top1"]
                                        if r["sha256"] in acc else None)
        else:
            sizes = {s: m.get("size_bytes") for s, m in self.manifests_by_sha().items()}
            points = data.pareto_points(verdicts, lambda r: sizes[r["sha256"]] / 1e6
                                        if isinstance(sizes.get(r["sha256"]), int) else None)
        front = data.frontier(points, higher_is_better=y == "top1")
        devices = sorted({p["row"]["device"] for p in points})
        return "Pareto", pages.pareto_page(points, front, y, PARETO_AXES, devices), "pareto"

    def artifacts(self, request):
        from mobexport.benchmarks.server import list_manifests

        base = f'{request.url.scheme}://{request.headers.get("host", "")}'
        return "Artifacts", pages.artifacts_page(list_manifests(self.root), base), "artifacts"

    def artifact_file(self, request):
        from starlette.exceptions import HTTPException
        from starlette.responses import FileResponse, JSONResponse

        from mobexport.benchmarks.server import resolve_artifact

        p = request.path_params
        if p["what"] not in ("manifest.json", "download"):
            raise HTTPException(404, "no such file")
        path, manifest = resolve_artifact(self.root, p["model"], p["target"])
        if p["what"] == "manifest.json":
            return JSONResponse(manifest, headers=HEADERS)
        if path.is_dir():
            return FileResponse(self.app.state.bundles.zip_of(path, manifest), filename=path.name + ".zip",
                                media_type="application/zip")
        return FileResponse(path, filename=path.name, media_type="application/octet-stream")

    def api_docs(self, request):
        return "API", pages.api_page(self.app.openapi()), "api"

    def static_file(self, request):
        from starlette.exceptions import HTTPException
        from starlette.responses import Response

        hit = self.static.get(request.path_params["name"])
        if hit is None:
            raise HTTPException(404, "no such file")
        return Response(hit[0], media_type=hit[1], headers={**HEADERS, "Cache-Control": "max-age=600"})

    # -- login ----------------------------------------------------------------------------------------------
    def login_form(self, request):
        from starlette.responses import RedirectResponse

        nxt = _safe_next(request.query_params.get("next", "/"))
        if self.token is None or self.authed(request):
            return RedirectResponse(nxt, 303, headers=HEADERS)
        return self._form(nxt)

    def _form(self, nxt: str, error: str = "", status: int = 200):
        """The login form with a fresh double-submit value (in its hidden field and a cookie)."""
        csrf = secrets.token_urlsafe(24)
        return self.html(status, "Log in", pages.login_page(csrf, nxt, error), cookies=[(CSRF_COOKIE, csrf, "/login")])

    async def login(self, request):
        from starlette.exceptions import HTTPException
        from starlette.responses import RedirectResponse

        from mobexport.benchmarks.server import _read_limited

        try:
            self.check(request)
            ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                raise HTTPException(415, "send the login form as application/x-www-form-urlencoded")
            body = await _read_limited(request, MAX_FORM)
            try:
                form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
            except ValueError:
                raise HTTPException(400, "malformed form") from None
            field = {k: v[0] for k, v in form.items()}
            cookie = request.cookies.get(CSRF_COOKIE, "")
            if not cookie or not _same(field.get("csrf", ""), cookie):
                raise HTTPException(403, "the login form expired or came from elsewhere: reload it and try again")
        except HTTPException as ex:
            return self.html(ex.status_code, "Error", pages.error_page(ex.status_code, ex.detail))
        nxt = _safe_next(field.get("next", "/"))
        if self.token is None:
            return RedirectResponse(nxt, 303, headers=HEADERS)
        if not _same(field.get("token", ""), self.token):
            await asyncio.sleep(WRONG_TOKEN_DELAY)
            return self._form(nxt, "Wrong token.", 401)
        resp = RedirectResponse(nxt, 303, headers=HEADERS)
        resp.set_cookie(SESSION_COOKIE, self.session, path="/", httponly=True, samesite="lax")
        resp.delete_cookie(CSRF_COOKIE, path="/login")
        return resp

    async def logout(self, request):
        from starlette.exceptions import HTTPException
        from starlette.responses import RedirectResponse

        try:
            self.check(request)
        except HTTPException as ex:
            return self.html(ex.status_code, "Error", pages.error_page(ex.status_code, ex.detail))
        resp = RedirectResponse("/login" if self.token else "/", 303, headers=HEADERS)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp


def add_web_routes(app, store, artifacts_root: Path, *, token: str | None) -> None:
    """Add the pages to ``app`` (the API's FastAPI app) as plain routes: outside the OpenAPI document and the
    API's bearer-only dependency, with their own checks (see the module docstring)."""
    from starlette.routing import Route

    web = _Web(app, store, Path(artifacts_root).resolve(), token)
    get = ["GET", "HEAD"]
    app.router.routes.extend([
        Route("/", web.page(web.results), methods=get),
        Route("/results/{rid}", web.page(web.result), methods=get),
        Route("/models/{model}", web.page(web.model), methods=get),
        Route("/regressions", web.page(web.regressions), methods=get),
        Route("/pareto", web.page(web.pareto), methods=get),
        Route("/artifacts", web.page(web.artifacts), methods=get),
        Route("/artifacts/{model}/{target}/{what:str}", web.page(web.artifact_file), methods=get),
        Route("/api-docs", web.page(web.api_docs), methods=get),
        Route("/static/{name}", web.page(web.static_file, public=True), methods=get),
        Route("/login", web.page(web.login_form, public=True), methods=get),
        Route("/login", web.login, methods=["POST"]),
        Route("/logout", web.logout, methods=["POST"]),
    ])

