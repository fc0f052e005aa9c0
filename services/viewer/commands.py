"""``spatialvid view DIR`` (the browser viewer) and ``spatialvid report DIR`` (the statistics report)."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from services.artifacts import METADATA_TABLE

# Loopback only by default: the viewer serves the dataset's files to whoever reaches it.
DEFAULT_HOST = "127.0.0.1"
REPORT_NAME = "report.html"


def register(sub: argparse._SubParsersAction) -> None:
    view = sub.add_parser("view", help="browse a dataset (clips, poses, depth, masks) in a local web app")
    view.add_argument("folder", type=Path, metavar="DIR", help="an output folder of `spatialvid run` or `fetch`")
    view.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    view.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    view.set_defaults(handler=cmd_view)

    report = sub.add_parser("report", help="write the dataset's statistics report as one self-contained HTML file")
    report.add_argument("folder", type=Path, metavar="DIR")
    report.add_argument("--out", type=Path, default=None, metavar="FILE", help=f"default: DIR/{REPORT_NAME}")
    report.set_defaults(handler=cmd_report)


def _check_dataset(folder: Path) -> str | None:
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not (folder / f"{METADATA_TABLE}.parquet").is_file() and not (folder / "records" / "clips").is_dir():
        return f"{folder} holds no dataset (no metadata.parquet, no records/clips/)"
    return None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def cmd_view(args: argparse.Namespace) -> int:
    import uvicorn

    from services.viewer.web import create_local_app

    problem = _check_dataset(args.folder)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    port = args.port or _free_port(args.host)
    host_in_url = f"[{args.host}]" if ":" in args.host else args.host
    print(f"viewer for {args.folder.resolve()} at http://{host_in_url}:{port}/ (Ctrl-C stops it)", flush=True)
    uvicorn.run(create_local_app(args.folder), host=args.host, port=port, log_level="warning")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from services.storage.local import LocalStore
    from services.viewer.dataset import DatasetView
    from services.viewer.report import dataset_report

    problem = _check_dataset(args.folder)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = args.out or args.folder / REPORT_NAME
    html = dataset_report(DatasetView(LocalStore(args.folder)), args.folder.resolve().name)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html)
    tmp.replace(out)
    print(out)
    return 0
