"""``mobexport serve [--db URL] [--host 127.0.0.1] [--port N] [--token T] [--artifacts DIR]``: the HTTP server
the companion apps download artifacts from and post results to. Any host other than loopback needs --token."""

from __future__ import annotations

import argparse
import os

from ._common import notice


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="results database (default ./mobexport-results.db)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=os.environ.get("MOBEXPORT_TOKEN"),
                   help="require 'Authorization: Bearer TOKEN' (default: $MOBEXPORT_TOKEN)")
    p.add_argument("--artifacts", default="exports", help="export folder served to the apps (default exports)")


def run(args) -> int:
    from pathlib import Path

    from mobexport.benchmarks import server
    from mobexport.exporter.errors import UsageError

    server.check_bind(args.host, args.token)
    if not 0 < args.port < 65536:
        raise UsageError(f"invalid port {args.port}")
    if not Path(args.artifacts).is_dir():
        raise UsageError(f"artifacts folder {args.artifacts} does not exist" if not Path(args.artifacts).exists()
                         else f"--artifacts {args.artifacts} is not a folder",
                         hint="pass --artifacts DIR with the folder 'mobexport export --out' wrote to (default exports)")
    from mobexport.benchmarks.store import redact_url

    sock = server.listen_socket(args.host, args.port)  # a busy port is exit 2 before the database is opened
    try:
        app = server.create_app(args.db, token=args.token, artifacts_dir=args.artifacts)
    except BaseException:
        sock.close()
        raise
    notice(f"mobexport serve: results pages at http://{args.host}:{args.port}/, API at /api/v1 (artifacts from "
           f"{args.artifacts}, results into {redact_url(app.state.store.url)}{', token required' if args.token else ''})")
    server.run(app, sock)
    return 0
