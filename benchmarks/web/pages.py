"""HTML of the results pages: plain server-rendered markup, every value escaped, no script and no inline style
(the pages are served with a Content-Security-Policy that forbids both)."""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from . import data, svg

NAV = (("results", "/", "Results"), ("regressions", "/regressions", "Regressions"), ("pareto", "/pareto", "Pareto"),
       ("artifacts", "/artifacts", "Artifacts"), ("api", "/api-docs", "API"))
LABELS = {"id": "#", "min_ms": "min ms", "p50_ms": "p50 ms", "p90_ms": "p90 ms", "std_ms": "std ms",
          "mean_ms": "mean ms"}
ACTIVE = ' class="active"'
FLAGS = {"slower": ("bad", "▲ slower"), "faster": ("good", "▼ faster"), "same": ("ok", "within noise"),
         "single": ("muted", "one run")}


def e(v: Any) -> str:
    """``v`` as HTML text; None (a field the harness did not report) is a dash."""
    return "–" if v is None else escape(str(v))


def ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:+.1%}"


def threads(row: dict[str, Any]) -> str:
    return f'{row["threads"]} thr' if row.get("threads") else "default threads"  # the apps may not report it


def result_href(rid: int) -> str:
    return f"/results/{rid}"


def model_href(model: str) -> str:
    return "/models/" + quote(model, safe="")


def layout(title: str, body: str, *, active: str = "", logout: bool = False, nav: bool = True) -> str:
    links = "".join(f'<a href="{href}"{ACTIVE if key == active else ""}>{label}</a>' for key, href, label in NAV
                    if nav)
    out = ('<form method="post" action="/logout" class="logout"><button type="submit">Log out</button></form>'
           if logout else "")
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)} · mobexport</title><link rel="stylesheet" href="/static/style.css">'
            '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>'
            f'<body><header><a class="brand" href="/">mobexport</a><nav>{links}</nav>{out}</header>'
            f'<main><h1>{e(title)}</h1>{body}</main></body></html>')


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>'


def _kv(pairs: list[tuple[str, Any]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


# ---------------------------------------------------------------- results


def _cell(r: dict[str, Any], col: str) -> str:
    v = r[col]
    if col == "id":
        flag = ('<a class="tag bad" href="/regressions" title="slower than the run before beyond the noise band">▲'
                '</a>' if r.get("regressed") else "")
        return f'<a href="{result_href(v)}">{v}</a>{flag}'
    if col == "model":
        return f'<a href="{model_href(v)}">{e(v)}</a>'
    if col.endswith("_ms"):
        return f'<span class="num{" headline" if col == "min_ms" else ""}">{ms(v)}</span>'
    if col == "status":
        return f'<span class="status {"ok" if v == "OK" else "warn"}">{e(v)}</span>'
    if col == "timestamp":
        return f'<span class="time" title="{e(v)}">{e(str(v)[:16].replace("T", " "))}</span>'
    return e(v)


def results_page(rows: list[dict[str, Any]], total: int, options: dict[str, list[str]],
                 filters: dict[str, str], query: str, sort: str, desc: bool, shown: int) -> str:
    selects = []
    for f in data.FILTERS:
        opts = "".join(f'<option value="{e(v)}"{" selected" if v == filters.get(f) else ""}>{e(v)}</option>'
                       for v in options[f])
        selects.append(f'<label>{f}<select name="{f}"><option value="">any</option>{opts}</select></label>')
    form = ('<form method="get" action="/" class="filters">' + "".join(selects) +
            f'<label>search<input type="search" name="q" value="{e(query)}" placeholder="words"></label>'
            f'<input type="hidden" name="sort" value="{e(sort)}"><input type="hidden" name="desc" '
            f'value="{int(desc)}"><button type="submit">Filter</button><a href="/">clear</a></form>')
    base = {**{k: v for k, v in filters.items() if v}, **({"q": query} if query else {})}
    head = []
    for col in data.COLUMNS:
        flip = int(not desc) if col == sort else int(col in ("timestamp", "id"))
        arrow = (" ▼" if desc else " ▲") if col == sort else ""
        href = "/?" + urlencode({**base, "sort": col, "desc": flip})
        head.append(f'<a href="{e(href)}" data-sort="{col}">{LABELS.get(col, col)}{arrow}</a>')
    body = [[_cell(r, c) for c in data.COLUMNS] for r in rows[:shown]]
    more = f" (first {shown} shown)" if len(rows) > shown else ""
    count = f'<p class="count"><span id="count">{len(rows)}</span> of {total} results{more}</p>'
    table = _table(head, body, "results") if rows else '<p class="empty">No result matches.</p>'
    return form + count + table


# ---------------------------------------------------------------- one result


def result_page(rid: int, r: dict[str, Any], manifest: dict[str, Any] | None, accuracy: dict | None,
                artifact_link: str | None) -> str:
    samples = r["samples_ms"]
    stats = _kv([("min (headline)", f'<b>{ms(r["min_ms"])}</b> ms'), ("p50", ms(r["p50_ms"])),
                 ("p90", ms(r["p90_ms"])), ("mean", ms(r["mean_ms"])), ("std", ms(r["std_ms"])),
                 ("max", ms(r["max_ms"])), ("runs / warm-up", f'{r["runs"]} / {r["warmup"]}'),
                 ("load", ms(r.get("load_ms")) + " ms"),
                 ("peak RSS", "–" if r.get("peak_rss_mb") is None else f'{r["peak_rss_mb"]:.1f} MB')])
    charts = '<p class="empty">No raw samples stored.</p>'
    if samples:
        edges, counts = data.histogram(samples)
        marks = {"min": r["min_ms"], "p50": r["p50_ms"], "p90": r["p90_ms"]}
        charts = (f'<h2>Latency histogram <small>{len(counts)} bins (Freedman–Diaconis), {len(samples)} '
                  f'samples</small></h2>{svg.histogram_svg(edges, counts, marks)}'
                  f'<h2>Sample trace <small>in run order</small></h2>{svg.trace_svg(samples)}')
    tools = ", ".join(f"{e(k)} {e(v)}" for k, v in sorted((r.get("tool_versions") or {}).items()))
    prov = _kv([("model", f'<a href="{model_href(r["model"])}">{e(r["model"])}</a>'), ("weights", e(r["weights"])),
                ("target", e(r["target"])), ("artifact sha256", f'<code>{e(r["artifact_sha256"])}</code>'),
                ("harness", e(r["harness"])), ("device", e(r["device_model"])),
                ("OS", e(f'{r["os"]} {r["os_version"]}')), ("chip", e(r["chip"])),
                ("runtime", e(f'{r["runtime"]} {r["runtime_version"]}')), ("compute unit", e(r["compute_unit"])),
                ("threads", e(r.get("threads"))), ("input shape", e(r["input_shape"])),
                ("batch", e(r["batch_size"])),
                ("thermal", e(f'{r.get("thermal_state_before") or "–"} → {r.get("thermal_state_after") or "–"}')),
                ("tool versions", tools or "–"), ("git commit", f'<code>{e(r.get("git_commit"))}</code>'),
                ("timestamp", e(r["timestamp"])), ("notes", e(r.get("notes")))])
    fid = [("validation status", f'<span class="status {"ok" if r["validation_status"] == "OK" else "warn"}">'
                                 f'{e(r["validation_status"])}</span>')]
    if manifest and isinstance(manifest.get("fidelity"), dict):
        fid += _flat(manifest["fidelity"])
    if accuracy:
        fid.append(("measured top-1", f'{100 * accuracy["artifact_top1"]:.2f} % (n={e(accuracy["n_images"])})'))
    mf = ('<p class="empty">No artifact with this sha256 among the exports this server serves.</p>'
          if manifest is None else
          f'<p><a href="{e(artifact_link)}">download the artifact</a></p>'
          f'<details><summary>manifest.json</summary><pre>{e(json.dumps(manifest, indent=2))}</pre></details>')
    links = (f'<p class="links"><a href="/regressions?baseline={rid}">pin as regression baseline</a> · '
             f'<a href="/results/{rid}.json">raw JSON</a> · <a href="{model_href(r["model"])}">all targets and '
             f'devices of {e(r["model"])}</a></p>')
    return (links + '<div class="grid2"><section><h2>Statistics</h2>' + stats + '</section><section>'
            '<h2>Fidelity</h2>' + _kv(fid) + '</section></div>' + charts +
            '<h2>Provenance</h2>' + prov + '<h2>Manifest</h2>' + mf)


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else _short(v)


def _flat(d: dict[str, Any]) -> list[tuple[str, str]]:
    """Key/value rows of a fidelity report, nested dicts one level down as ``outer.inner``, numbers to 4
    significant digits."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += [(f"{k}.{k2}", e(_num(v2))) for k2, v2 in v.items()]
        elif v not in ([], {}, None, ""):
            out.append((k, e(_num(v))))
    return out


def _short(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= 200 else text[:200] + "…"


# ---------------------------------------------------------------- one model


def model_page(model: str, targets: list[str], devices: list[str], cells: dict, n_runs: int) -> str:
    head = ["target \\ device", *(e(d) for d in devices)]
    body = []
    for t in targets:
        row = [f"<b>{e(t)}</b>"]
        for d in devices:
            c = cells.get((t, d))
            if c is None:
                row.append('<span class="muted">–</span>')
                continue
            cls = " ".join(x for x in ("cell", "best" if c.fastest_on_device else "",
                                       "regressed" if c.regressed else "") if x)
            tags = ('<span class="tag best">★ fastest</span>' if c.fastest_on_device else "") + \
                   ('<span class="tag bad">▲ regression</span>' if c.regressed else "")
            extra = f' <small>({c.configs} configs)</small>' if c.configs > 1 else ""
            row.append(f'<span class="{cls}"><a href="{result_href(c.best["id"])}">{ms(c.best["min_ms"])} ms</a>'
                       f'{extra} <small>{e(c.best["runtime"])}</small>{tags}</span>')
        body.append(row)
    return (f'<p>Latest min latency of each target on each device ({n_runs} runs stored). ★ marks the fastest '
            f'target on a device, ▲ a regression by the <a href="/regressions?model={quote(model)}">rule</a>. '
            f'<a href="/?{urlencode({"model": model})}">All runs of {e(model)}</a>.</p>' +
            _table(head, body, "grid"))


# ---------------------------------------------------------------- regressions


def regressions_page(verdicts: list[data.Verdict], baselines: set[int], model: str) -> str:
    rows = []
    for v in verdicts:
        cls, label = FLAGS[v.flag]
        lt, ref = v.latest, v.reference
        ref_cell = "–" if ref is None else (f'<a href="{result_href(ref["id"])}">#{ref["id"]}</a> '
                                            f'{ms(ref["min_ms"])}{" <b>pinned</b>" if v.baseline else ""}')
        rows.append([f'<span class="flag {cls}" data-flag="{v.flag}">{label}</span>',
                     f'<a href="{model_href(lt["model"])}">{e(lt["model"])}</a>', e(lt["target"]),
                     e(lt["device"]), e(f'{lt["runtime"]} · {lt["compute_unit"]} · {threads(lt)}'),
                     ref_cell, f'<a href="{result_href(lt["id"])}">#{lt["id"]}</a> {ms(lt["min_ms"])}',
                     f'<span class="num">{pct(v.change)}</span>', f"±{v.band:.1%}",
                     f'{len(v.history)}' + (f" (σ {v.sigma:.1%})" if v.sigma is not None else "")])
    head = ["", "model", "target", "device", "runtime · unit · threads", "reference min ms", "latest min ms",
            "change", "noise band", "earlier runs"]
    pinned = (f'<p>Pinned baselines: {", ".join(f"#{b}" for b in sorted(baselines))} '
              f'(<a href="/regressions">unpin</a>).</p>' if baselines else
              '<p>Pin a baseline from a result page ("pin as regression baseline"), or add '
              '<code>?baseline=ID</code> to this page\'s address (repeatable).</p>')
    flt = (f'<p>Model {e(model)} only (<a href="/regressions">all models</a>).</p>' if model else "")
    slower = sum(v.flag == "slower" for v in verdicts)
    return (f'<p class="rule"><b>Rule.</b> {e(data.REGRESSION_RULE)}</p>{pinned}{flt}'
            f'<p class="count"><span id="regressed">{slower}</span> regressed of {len(verdicts)} '
            f'configurations.</p>' + (_table(head, rows, "regressions") if rows else
                                      '<p class="empty">No results stored yet.</p>'))


# ---------------------------------------------------------------- Pareto


def pareto_page(points: list[dict[str, Any]], front: list[dict[str, Any]], y: str, axes: dict[str, str],
                devices: list[str]) -> str:
    pick = " · ".join(f'<b>{e(label)}</b>' if key == y else f'<a href="/pareto?y={key}">{e(label)}</a>'
                      for key, label in axes.items())
    if not points:
        return f'<p>y axis: {pick}</p><p class="empty">No stored result has a {e(axes[y])} yet.</p>'
    index = {d: i for i, d in enumerate(devices)}
    chart = svg.scatter_svg(points, front, axes[y], lambda r: index[r["device"]], lambda r: result_href(r["id"]),
                            lambda r: f'{r["model"]} {r["target"]} · {r["runtime"]} {threads(r)}')
    legend = "".join(f'<span class="legend"><svg viewBox="0 0 10 10" class="dot"><circle class="s{i % 8}" '
                     f'cx="5" cy="5" r="4"/></svg>{e(d)}</span>' for d, i in index.items())
    rows = [[f'<a href="{result_href(p["row"]["id"])}">{e(p["row"]["model"])}</a>', e(p["row"]["target"]),
             e(p["row"]["device"]), e(p["row"]["runtime"]), e(p["row"]["threads"]), ms(p["x"]), f'{p["y"]:.4g}']
            for p in front]
    return (f'<p>y axis: {pick}. One point per artifact, device and runtime (its latest run); the line joins '
            f'the Pareto frontier (nothing both faster and better).</p>{chart}<p>{legend}</p><h2>Frontier</h2>' +
            _table(["model", "target", "device", "runtime", "threads", "min ms", e(axes[y])], rows))


# ---------------------------------------------------------------- artifacts


def artifacts_page(manifests: list[dict[str, Any]], api_base: str) -> str:
    if not manifests:
        return '<p class="empty">No exported artifact in the folder this server serves.</p>'
    rows = []
    for m in manifests:
        where = f'{quote(str(m["model"]), safe="")}/{quote(str(m["target"]), safe="")}'
        size = m.get("size_bytes")
        fid = m.get("fidelity") if isinstance(m.get("fidelity"), dict) else {}
        rows.append([f'<a href="{model_href(str(m["model"]))}">{e(m["model"])}</a>', e(m["target"]),
                     e(m.get("weights")), "–" if not isinstance(size, int) else f"{size / 1e6:.2f} MB",
                     f'<span class="status {"ok" if m.get("status") == "OK" else "warn"}">{e(m.get("status"))}'
                     f'</span>', e(_short(fid.get("max_abs_err", fid.get("cosine", "–")))),
                     f'<code title="{e(m.get("sha256"))}">{e(str(m.get("sha256", ""))[:12])}</code>',
                     f'<a href="/artifacts/{where}/manifest.json">manifest</a> · '
                     f'<a href="/artifacts/{where}/download">download</a>',
                     f'<code>{e(api_base)}/api/v1/artifacts/{where}/download</code>'])
    return ('<p>What this host exported, as the companion apps see it: they list <code>/api/v1/artifacts</code> '
            'and fetch each download with the server\'s token.</p>' +
            _table(["model", "target", "weights", "size", "status", "fidelity", "sha256", "files", "app URL"],
                   rows, "artifacts"))


# ---------------------------------------------------------------- API docs, login, errors


def _param(p: dict[str, Any]) -> str:
    """``name`` (where, type, bounds) of one OpenAPI parameter."""
    sch = p.get("schema", {})
    kinds = [a.get("type") for a in sch.get("anyOf", [sch]) if a.get("type") not in (None, "null")]
    bounds = [f"{k} {sch[k]}" for k in ("minimum", "maximum", "maxLength") if k in sch]
    extra = ", ".join([p.get("in", ""), *kinds, *bounds, *(["required"] if p.get("required") else [])])
    return f"<code>{e(p.get('name'))}</code> <small>({e(extra)})</small>"


def api_page(doc: dict[str, Any]) -> str:
    rows = []
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            params = "<br>".join(_param(p) for p in op.get("parameters", []))
            if "requestBody" in op:
                params += ("<br>" if params else "") + "body: a result.schema.json record (application/json)"
            codes = " ".join(f'<span class="code" title="{e(v.get("description", ""))}">{e(c)}</span>'
                             for c, v in op.get("responses", {}).items())
            rows.append([f'<span class="method">{e(method.upper())}</span>', f"<code>{e(path)}</code>",
                         e(op.get("summary", "")), params or "–", codes])
    info = doc.get("info", {})
    return (f'<p>{e(info.get("title"))}, version {e(info.get("version"))}, from its OpenAPI document '
            '(<a href="/openapi.json">/openapi.json</a>, behind the same rules as the API: with a token, send '
            '<code>Authorization: Bearer TOKEN</code>). Hover an answer code for its meaning.</p>' +
            _table(["", "path", "what", "parameters", "answers"], rows, "api"))


def login_page(csrf: str, next_path: str, error: str = "") -> str:
    msg = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    return (f'{msg}<p>This server was started with a token. Enter it to browse the results; your browser keeps '
            f'a session cookie for this server only.</p><form method="post" action="/login" class="login">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="next" '
            f'value="{e(next_path)}"><label>token<input type="password" name="token" autocomplete="current-password" '
            f'required autofocus></label><button type="submit">Log in</button></form>')


def error_page(status: int, detail: str) -> str:
    return f'<p class="error">{status}: {e(detail)}</p><p><a href="/">Back to the results</a></p>'
