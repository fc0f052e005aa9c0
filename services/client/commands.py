"""``spatialvid submit | status | wait | fetch``: the distributed mode from the command line.

They talk to ``--api URL`` with ``--key KEY`` (or ``SPATIALVID_API_URL`` /
``SPATIALVID_API_KEY``), and default to the local stack (``spatialvid stack up``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from services.client.api import ApiFailure, GatewayClient, resolve_target
from services.settings import JOB_OVERRIDABLE_SECTIONS, ConfigError, load_settings, read_config_file

console = Console(stderr=True)

EXIT_CODES = {"succeeded": 0, "partially_failed": 3, "failed": 1, "cancelled": 1}
EXIT_API_ERROR = 2  # the gateway refused the request or could not be reached
EXIT_TIMEOUT = 4  # wait --timeout passed before the job ended


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=None, metavar="URL", help="gateway URL (default: SPATIALVID_API_URL, "
                        "else the local stack)")
    parser.add_argument("--key", default=None, metavar="KEY", help="API key (default: SPATIALVID_API_KEY, "
                        "else the local stack's development key)")


def register(subparsers: argparse._SubParsersAction) -> None:
    submit = subparsers.add_parser("submit", help="upload videos to the gateway and start a job")
    submit.add_argument("videos", nargs="*", type=Path, metavar="VIDEO")
    submit.add_argument("--prefix", default=None, metavar="S3_URI",
                        help="instead of VIDEOs: every video below s3://bucket/prefix/")
    submit.add_argument("--manifest", default=None, metavar="S3_URI",
                        help="instead of VIDEOs: a text object listing one s3:// or http(s):// URI per line")
    submit.add_argument("--stages", default=None, help="comma list of stages (default: all)")
    submit.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help=f"YAML overrides for the job (fields of {', '.join(JOB_OVERRIDABLE_SECTIONS)}; "
                        "services/settings.py JOB_SETTABLE_FIELDS lists which)")
    _common(submit)
    submit.set_defaults(handler=_submit)

    status = subparsers.add_parser("status", help="print a job's status as JSON")
    status.add_argument("job")
    _common(status)
    status.set_defaults(handler=_status)

    wait = subparsers.add_parser(
        "wait", help="wait for a job to end, with a progress bar",
        description="Exit status: 0 succeeded, 3 partially_failed, 1 failed or cancelled, "
                    "2 the gateway refused or could not be reached, 4 --timeout passed first.")
    wait.add_argument("job")
    wait.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    _common(wait)
    wait.set_defaults(handler=_wait)

    fetch = subparsers.add_parser("fetch", help="download a job's output (the embedded layout) into DIR")
    fetch.add_argument("job")
    fetch.add_argument("--out", required=True, type=Path, metavar="DIR")
    fetch.add_argument("--partial", action="store_true", help="fetch a job that has not ended yet (no tables)")
    _common(fetch)
    fetch.set_defaults(handler=_fetch)


def _client(args: argparse.Namespace) -> GatewayClient:
    settings = load_settings()
    url, key = resolve_target(settings, args.api, args.key)
    return GatewayClient(url, key, timeout_s=settings.client.timeout_s)


def _run(args: argparse.Namespace, body) -> int:
    try:
        with _client(args) as client:
            return body(client)
    except ApiFailure as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_API_ERROR
    except (ConfigError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_API_ERROR


def _submit(args: argparse.Namespace) -> int:
    def body(client: GatewayClient) -> int:
        config = read_config_file(args.config) if args.config else None
        if bool(args.videos) + bool(args.prefix) + bool(args.manifest) != 1:
            raise ApiFailure(0, "bad_arguments", "give VIDEO files, or --prefix, or --manifest (one of them)")
        if not args.videos:
            accepted = client.submit_listing(prefix=args.prefix, manifest=args.manifest, stages=args.stages,
                                             config=config)
            console.print(f"job {accepted['id']} queued: inputs listed from {args.prefix or args.manifest}, "
                          f"stages {','.join(accepted['stages'])}")
            print(accepted["id"])
            return 0
        for video in args.videos:
            if not video.is_file():
                raise ApiFailure(0, "no_file", f"{video} is not a file")
        accepted = client.submit(args.videos, args.stages, config)
        console.print(f"job {accepted['id']} queued: {len(accepted['videos'])} video(s), "
                      f"stages {','.join(accepted['stages'])}")
        print(accepted["id"])  # the last line: scripts read the job id from here
        return 0

    return _run(args, body)


def _status(args: argparse.Namespace) -> int:
    def body(client: GatewayClient) -> int:
        print(json.dumps(client.status(args.job), indent=2))
        return 0

    return _run(args, body)


def _wait(args: argparse.Namespace) -> int:
    def body(client: GatewayClient) -> int:
        poll = load_settings().client.poll_interval_s
        with Progress(TextColumn("[bold]{task.fields[state]:<16}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TextColumn("{task.fields[detail]}", style="dim"), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("job", total=1.0, state="", detail="")

            def update(status: dict) -> None:
                detail = (f"videos {status['videos_clipped']}/{status['videos_total']}, "
                          f"clips {status['clips_finished']}/{status['clips_total']}")
                bar.update(task, completed=status["progress"], state=status["state"], detail=detail)

            final = client.wait(args.job, poll_s=poll, timeout_s=args.timeout, on_update=update)
        for source, reason in final.get("errors", {}).items():
            console.print(f"[red]failed video[/red] {source}: {reason}")
        console.print(f"job {args.job}: {final['state']}")
        return EXIT_CODES.get(final["state"], 1)

    try:
        return _run(args, body)
    except TimeoutError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_TIMEOUT


def _fetch(args: argparse.Namespace) -> int:
    def body(client: GatewayClient) -> int:
        written = client.fetch(args.job, args.out, partial=args.partial)
        console.print(f"{len(written)} file(s) written to {args.out}")
        return 0

    return _run(args, body)

