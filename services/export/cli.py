"""``spatialvid export DIR --format spatialvid-hq|webdataset --out OUT``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.settings import ConfigError, Settings, load_settings
from services.storage.base import ArtifactStore
from services.storage.local import LocalStore

console = Console(stderr=True)


def register(sub) -> None:
    p = sub.add_parser("export", help="write an output folder as the SpatialVID-HQ layout or WebDataset shards")
    p.add_argument("source", metavar="DIR", help="an output folder of `spatialvid run` (or s3://bucket/prefix)")
    p.add_argument("--format", required=True, choices=("spatialvid-hq", "webdataset"))
    p.add_argument("--out", required=True, metavar="OUT", help="export folder, or s3://bucket/prefix (settings' s3)")
    p.add_argument("--group-size", type=int, default=None, help="clips per group_XXXX (export.group_size)")
    p.add_argument("--shard-clips", type=int, default=None, help="clips per tar shard (export.shard_clips)")
    p.add_argument("--include-filtered", action="store_true", help="also export clips a filter dropped")
    p.add_argument("--config", type=Path, default=None, metavar="FILE", help="YAML settings file")
    p.set_defaults(handler=cmd_export)


def open_store(location: str, settings: Settings) -> ArtifactStore:
    """A local folder, or ``s3://bucket/prefix`` with the settings' S3 endpoint and credentials."""
    if location.startswith("s3://"):
        from services.storage.s3 import S3Store

        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {location!r}")
        store = S3Store(settings.s3.model_copy(update={"bucket": bucket}), prefix=prefix)
        store.ensure_bucket()
        return store
    return LocalStore(Path(location))


def cmd_export(args: argparse.Namespace) -> int:
    from services.export.run import export

    try:
        settings = load_settings(args.config)
        overrides = {"group_size": args.group_size, "shard_clips": args.shard_clips,
                     "include_filtered": args.include_filtered or None}
        options = settings.export.model_validate(
            {**settings.export.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except (ConfigError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if not args.source.startswith("s3://") and not (Path(args.source) / "records" / "clips").is_dir():
        console.print(f"[red]error:[/red] {args.source} is not an output folder of `spatialvid run` (no records/clips)")
        return 2
    if Path(args.out).resolve() == Path(args.source).resolve():
        console.print("[red]error:[/red] --out must differ from DIR")
        return 2
    source, dest = open_store(args.source, settings), open_store(args.out, settings)
    with Progress(TextColumn("[bold]export"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("export", total=None)
        summary = export(source, dest, args.format, options, lambda done, total: bar.update(task, completed=done,
                                                                                              total=total))
    print(summary.model_dump_json(indent=1))
    return 0
