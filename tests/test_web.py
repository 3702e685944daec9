"""The results web pages in a real browser: Debian's chromium driven by Playwright (its executable_path; no
downloaded browser) against a real ``mobexport serve`` app (uvicorn on 127.0.0.1) over a SQLite database filled
by real ``mobexport bench`` runs of a real export and by the example app payloads (benchmarks/schema/examples/),
some posted again with their samples scaled to make a run history and one deliberately slower run.

Every page is screenshotted into ``$MOBEXPORT_WEB_SCREENSHOTS`` (default ``.cache/web-screenshots/``)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from mobexport.benchmarks.results import compute_stats
from mobexport.benchmarks.server import create_app, post_result, serve_in_thread
from mobexport.benchmarks.store.accuracy import add_accuracy
from mobexport.cli import main

pytestmark = pytest.mark.xdist_group("web")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "benchmarks" / "schema" / "examples"
SHOTS = Path(os.environ.get("MOBEXPORT_WEB_SCREENSHOTS", ROOT / ".cache" / "web-screenshots"))
MODEL = "mobileone_s0"
TOKEN = "lan-t0ken-for-tests"
# The app history: the Android example posted at these scales of its samples, in this order. The last is the
# deliberately slower run (+50 %); the four before it differ by at most 1 %, so the noise band is the 3 % floor
# (sigma = 1.4826 * MAD / median = 0.74 %, 3 sigma = 2.2 %). The iOS example is posted twice, 2 % apart: with one
# earlier run there is no noise estimate and the band is the 10 % default, so it stays within noise.
ANDROID_SCALES = (1.00, 1.01, 0.99, 1.00, 1.50)
IOS_SCALES = (1.00, 1.02)


def _example(name: str, scale: float = 1.0) -> dict:
    record = json.loads((EXAMPLES / name).read_text())
    record["samples_ms"] = [round(x * scale, 6) for x in record["samples_ms"]]
    record.update(asdict(compute_stats(record["samples_ms"])))
    return record


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium here (apt-get install chromium; .ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> dict:
    """A database and export folder filled for real: an onnx-fp32 export of MODEL, two `mobexport bench` runs
    (the first with 1 thread and the PyTorch baseline, the second with 2 threads: another configuration), then
    the example app payloads posted to a running server."""
    from mobexport.converters import get_converter
    from mobexport.converters.pipeline import export

    root = tmp_path_factory.mktemp("web")
    exports = root / "exports"
    avail = get_converter("onnx").is_available()
    if not avail.ok:
        pytest.skip(f"onnx-fp32: {avail.reason}")
    export(MODEL, "onnx-fp32", out_dir=exports, options={"random_bn_seed": 0})
    db = str(root / "web.db")
    assert main(["bench", str(exports), "--torch", MODEL, "--runs", "40", "--warmup", "3", "--db", db]) == 0
    assert main(["bench", str(exports), "--threads", "2", "--runs", "40", "--warmup", "3", "--db", db]) == 0
    app = create_app(db, artifacts_dir=exports)
    ids: dict[str, list[int]] = {"android": [], "ios": []}
    with serve_in_thread(app) as url:
        for scale in ANDROID_SCALES:
            ids["android"].append(post_result(url, _example("android_result.json", scale)))
        for scale in IOS_SCALES:
            ids["ios"].append(post_result(url, _example("ios_result.json", scale)))
    host = [s.id for s in app.state.store.query(harness="host")]
    app.state.store.close()
    return {"db": db, "exports": exports, "ids": ids, "host": host}


@pytest.fixture(scope="module")
def site(filled):
    """The open (loopback, no token) server over the filled database."""
    app = create_app(filled["db"], artifacts_dir=filled["exports"])
    with serve_in_thread(app) as url:
        yield url
    app.state.store.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, site):
    """A fresh page that records console errors and every request that leaves the server's origin."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.errors, pg.foreign = [], []
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: r.url.startswith(site) or pg.foreign.append(r.url))
    yield pg
    ctx.close()


def _shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _column(pg, name: str) -> list[str]:
    heads = [h.strip() for h in pg.locator("table.results thead th").all_inner_texts()]
    i = next(k for k, h in enumerate(heads) if h.split(" ")[0] == name)
    return [c.strip() for c in pg.locator(f"table.results tbody tr td:nth-child({i + 1})").all_inner_texts()]


# ---------------------------------------------------------------- every page


def test_every_page_loads_offline_and_is_screenshotted(page, site, filled):
    android = filled["ids"]["android"][-1]
    pages = {"results": "/", "result": f"/results/{filled['host'][0]}", "result-android": f"/results/{android}",
             "model": f"/models/{MODEL}", "model-apps": "/models/mobileone_s1", "regressions": "/regressions",
             "pareto": "/pareto", "artifacts": "/artifacts", "api": "/api-docs"}
    for name, path in pages.items():
        resp = page.goto(site + path)
        assert resp.status == 200, (path, resp.status)
        assert page.locator("h1").inner_text().strip(), path
        # the stylesheet applied (it ships in the package): the header bar is dark, not the default white
        assert page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor") == \
            "rgb(20, 33, 61)", path
        _shot(page, name)
    assert page.errors == [] and page.foreign == []  # no CSP violation, no script error, nothing from a CDN
    page.goto(site + "/artifacts")
    assert page.locator("table.artifacts tbody tr").count() == 1
    download = page.locator("table.artifacts a", has_text="download").get_attribute("href")
    r = httpx.get(site + download)
    assert r.status_code == 200 and r.content == (filled["exports"] / MODEL / "onnx-fp32" / f"{MODEL}.onnx").read_bytes()
    page.goto(site + "/api-docs")
    assert page.locator("table.api code", has_text="/api/v1/results").count() >= 2
    page.goto(site + "/pareto?y=size")  # the host's export has a size; the app examples' artifacts are not here
    # one point per artifact, device and runtime configuration (1 and 2 threads) with a size (from the manifest);
    # the torch baseline has no file and the app examples' artifacts are not among these exports
    assert page.locator("svg.scatter circle.point").count() == 2
    assert page.locator("svg.scatter circle.point.front").count() == 1  # same size: the faster one wins


def test_a_filter_narrows_the_table_and_sorting_and_search_work(page, site, filled):
    page.goto(site + "/")
    total = page.locator("table.results tbody tr").count()
    n_app = len(ANDROID_SCALES) + len(IOS_SCALES)
    assert total == len(filled["host"]) + n_app
    page.select_option("select[name=model]", MODEL)
    page.click("form.filters button")
    assert set(_column(page, "model")) == {MODEL}
    assert page.locator("table.results tbody tr").count() == len(filled["host"]) < total
    page.select_option("select[name=model]", "")
    page.select_option("select[name=harness]", "android_app")
    page.click("form.filters button")
    assert page.locator("table.results tbody tr").count() == len(ANDROID_SCALES)
    _shot(page, "results-filtered")
    page.goto(site + "/?q=iphone")
    assert page.locator("table.results tbody tr").count() == len(IOS_SCALES)
    page.goto(site + "/")
    page.click("thead a[data-sort=min_ms]")
    mins = [float(x) for x in _column(page, "min")]
    assert mins == sorted(mins) and len(mins) == total
    page.click("thead a[data-sort=min_ms]")  # again: descending
    assert [float(x) for x in _column(page, "min")] == sorted(mins, reverse=True)


def test_result_page_draws_the_histogram_with_the_right_number_of_bins(page, site, filled):
    for rid in (filled["ids"]["android"][0], filled["host"][0]):
        samples = httpx.get(f"{site}/api/v1/results/{rid}").json()["samples_ms"]
        expected = min(100, len(np.histogram_bin_edges(samples, bins="fd")) - 1)  # Freedman-Diaconis
        page.goto(f"{site}/results/{rid}")
        bins = page.locator("svg.histogram rect.bin")
        assert bins.count() == expected, rid
        assert sum(int(c) for c in bins.evaluate_all("els => els.map(e => e.dataset.count)")) == len(samples)
        box = page.locator("svg.histogram").bounding_box()
        assert box["width"] > 400 and box["height"] > 100  # drawn, not collapsed
        assert page.locator("svg.trace polyline.trace").count() == 1
        assert page.get_by_text("validation status").count() == 1
    page.goto(f"{site}/results/{filled['host'][0]}")
    assert page.locator("details pre").count() == 1  # the host export's manifest, found by sha256
    assert page.locator("text=download the artifact").count() == 1


def test_a_deliberately_slower_run_is_flagged(page, site, filled):
    page.goto(site + "/regressions")
    slow = filled["ids"]["android"][-1]
    row = page.locator("table.regressions tbody tr", has=page.locator(f"a[href='/results/{slow}']"))
    assert row.locator(".flag").get_attribute("data-flag") == "slower"
    cells = row.locator("td").all_inner_texts()
    assert "+50.0%" in cells and "±3.0%" in cells  # the 3 % floor: earlier runs differ by <= 1 %
    ios = page.locator("table.regressions tbody tr", has=page.locator(f"a[href='/results/{filled['ids']['ios'][-1]}']"))
    assert ios.locator(".flag").get_attribute("data-flag") == "same"
    assert "±10.0%" in ios.locator("td").all_inner_texts()  # one earlier run: the default band
    assert int(page.locator("#regressed").inner_text()) == page.locator("[data-flag=slower]").count() >= 1
    page.goto(site + "/")  # the results table marks it too, and only it
    assert page.locator("table.results tbody tr .tag.bad").count() == 1
    assert page.locator("table.results tbody tr", has=page.locator(f"a[href='/results/{slow}']")) \
        .locator(".tag.bad").count() == 1
    page.goto(site + "/models/mobileone_s1")
    pixel = page.locator("table.grid td", has=page.locator(f"a[href='/results/{slow}']"))
    assert pixel.locator(".tag.bad").count() == 1
    # pinned baseline: against the first Android run the latest is still +50 % slower
    first = filled["ids"]["android"][0]
    page.goto(f"{site}/regressions?baseline={first}")
    row = page.locator("table.regressions tbody tr", has=page.locator(f"a[href='/results/{slow}']"))
    assert row.locator(".flag").get_attribute("data-flag") == "slower"
    assert "pinned" in row.inner_text()
    _shot(page, "regressions-pinned")


# ---------------------------------------------------------------- token (LAN bind) login


@pytest.fixture(scope="module")
def lan_site(filled):
    """The server as `mobexport serve --host <LAN address> --token T` runs it: a token is set, so any Host is
    answered but every page needs the token (bound to 127.0.0.1 here: the rules depend on the token, not on the
    address)."""
    app = create_app(filled["db"], token=TOKEN, artifacts_dir=filled["exports"])
    with serve_in_thread(app) as url:
        yield url
    app.state.store.close()


def test_lan_login_works_and_a_wrong_token_is_refused(browser, lan_site):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(lan_site + "/regressions")
    assert page.url.startswith(lan_site + "/login") and page.locator("form.login").count() == 1
    _shot(page, "login")
    page.fill("input[name=token]", "not-the-token")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as wrong:
        page.click("form.login button")
    assert wrong.value.status == 401 and page.locator("p.error").inner_text() == "Wrong token."
    assert not any(c["name"] == "mobexport_session" for c in ctx.cookies())
    _shot(page, "login-wrong")
    page.fill("input[name=token]", TOKEN)
    page.click("form.login button")
    page.wait_for_url(lan_site + "/regressions")
    assert page.locator("table.regressions tbody tr").count() > 0
    [cookie] = [c for c in ctx.cookies() if c["name"] == "mobexport_session"]
    assert cookie["httpOnly"] and TOKEN not in cookie["value"]
    # the cookie opens the pages, not the API (which keeps its bearer-only rule)
    assert page.request.get(lan_site + "/api/v1/results").status == 401
    page.click("form.logout button")
    page.wait_for_url(lan_site + "/login")
    assert page.goto(lan_site + "/").url.startswith(lan_site + "/login")
    ctx.close()


def test_login_form_is_csrf_safe_and_pages_refuse_strangers(lan_site, site):
    with httpx.Client(base_url=lan_site) as c:
        assert c.get("/").status_code == 303  # to the login form
        assert c.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        form = c.get("/login")
        csrf = form.cookies["mobexport_login_csrf"]
        assert f'value="{csrf}"' in form.text
        good = {"csrf": csrf, "token": TOKEN, "next": "/"}
        evil = c.post("/login", data=good, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and "mobexport_session" not in evil.cookies
        assert c.post("/login", data=good, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert c.post("/login", content=json.dumps(good), headers={"Content-Type": "text/plain"}).status_code == 415
        assert c.post("/login", data={**good, "csrf": "forged"}).status_code == 403
        ok = c.post("/login", data={**good, "next": "//evil.example/x"})  # never back to another site
        assert ok.status_code == 303 and ok.headers["location"] == "/" and "mobexport_session" in ok.cookies
        assert c.get("/").status_code == 200
    with httpx.Client(base_url=site) as c:  # open server: another Host name (DNS rebinding) is refused
        port = site.rsplit(":", 1)[1]
        assert c.get("/", headers={"Host": f"evil.example:{port}"}).status_code == 403


@pytest.mark.parametrize("path", [
    "/results/0", "/results/99999999999999999999", "/results/%00", "/results/1e3", "/results/١", "/results/-1.json",
    "/models/%00", "/models/" + quote("a" * 2000), "/?model=%00&sort=%00&desc=x&q=%ff", "/?q=" + "x" * 5000,
    "/regressions?baseline=99999999999999999999999", "/regressions?baseline=-1", "/pareto?y=%00",
    "/artifacts/../etc/passwd", "/artifacts/a/b/manifest.json", "/artifacts/%2e%2e/x/download",
    "/login?next=%00", "/static/nope.css",
])
def test_odd_input_is_a_4xx_page_never_a_5xx(site, path):
    r = httpx.get(site + path)
    assert r.status_code < 500, (path, r.status_code)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_pages_over_both_stores_without_a_browser(backend, tmp_path):
    """The same pages over SQLite and PostgreSQL (CI starts one): the app payloads posted, every page 200 with its
    security headers, the slower run flagged."""
    if backend == "sqlite":
        db = str(tmp_path / "w.db")
    else:
        base = os.environ.get("MOBEXPORT_TEST_PG_URL")
        if not base:
            pytest.skip("MOBEXPORT_TEST_PG_URL not set: no PostgreSQL to test against (CI starts one)")
        from .test_store import _fresh_pg_url

        db = _fresh_pg_url(base)
    app = create_app(db, artifacts_dir=tmp_path)
    with serve_in_thread(app) as url:
        ids = [post_result(url, _example("android_result.json", s)) for s in ANDROID_SCALES]
        post_result(url, _example("ios_result.json"))
        for name, top1 in (("android_result.json", 0.712), ("ios_result.json", 0.708)):
            rec = _example(name)  # an evaluation of each app artifact, as `mobexport eval` stores it
            add_accuracy(app.state.store, {
                "artifact_sha256": rec["artifact_sha256"], "model": rec["model"], "target": rec["target"],
                "weights": rec["weights"], "dataset_path": "/data/val", "dataset_fingerprint": "f" * 64,
                "n_images": 500, "artifact_top1": top1, "status": "OK", "float_status": "OK",
                "tool_versions": {}, "timestamp": rec["timestamp"]})
        for path in ("/", f"/results/{ids[-1]}", "/models/mobileone_s1", "/regressions", "/pareto", "/artifacts",
                     "/api-docs", "/?model=mobileone_s1&sort=min_ms&desc=0&q=pixel"):
            r = httpx.get(url + path)
            assert r.status_code == 200, (backend, path)
            assert "default-src 'none'" in r.headers["content-security-policy"] and "<script" not in r.text
        assert httpx.head(url + "/").status_code == 200
        pareto = httpx.get(url + "/pareto").text  # measured top-1 is the default axis once there is one
        assert "measured top-1 (%)" in pareto and pareto.count('<circle class="point') == 2
        assert pareto.count("point s0 front") + pareto.count("point s1 front") == 2  # iPhone faster, Pixel better
        assert "71.2" in httpx.get(f"{url}/results/{ids[-1]}").text  # the evaluation shows on the result page
        regressions = httpx.get(url + "/regressions").text
        assert regressions.count('data-flag="slower"') == 1 and f'href="/results/{ids[-1]}"' in regressions
        assert httpx.get(f"{url}/results/{ids[0]}.json").json()["samples_ms"] == _example("android_result.json")[
            "samples_ms"]
    app.state.store.close()
