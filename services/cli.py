"""The ``spatialvid`` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from services.settings import ConfigError, load_settings

# Modules that add subcommands: each has ``register(subparsers)``. A module
# that does not exist yet (a later issue adds it) is skipped.
COMMAND_MODULES = ("services.client.commands", "services.stack", "services.viewer.commands", "services.export.cli")

console = Console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spatialvid", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="process videos in this process (the embedded mode)")
    run.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="video files or folders")
    run.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (the dataset layout)")
    run.add_argument("--stages", default=None, help="comma list of clip,score,filter,camera,depth,caption "
                     "(annotate = camera,depth); default: every stage that exists")
    run.add_argument("--config", type=Path, default=None, metavar="FILE", help="YAML settings file")
    run.add_argument("--force", action="store_true", help="redo work already done in DIR")
    run.set_defaults(handler=cmd_run)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from services.artifacts import LOG
    from services.pipeline import EmbeddedPipeline
    from services.stages.registry import UnknownStage, parse_stage_list

    try:
        settings = load_settings(args.config)
        stages = parse_stage_list(args.stages)
    except (ConfigError, UnknownStage, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = logging.FileHandler(args.out / LOG)
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(log_file)
    summary = EmbeddedPipeline(settings, args.out, stages, force=args.force, console=console).run(args.inputs)
    print_summary(summary)
    return 0


def print_summary(summary) -> None:
    out = Console()
    table = Table(title="spatialvid run", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("stages", ", ".join(summary.stages))
    table.add_row("videos in", str(summary.videos_in))
    table.add_row("clips out", f"{summary.clips_out} ({summary.clips_kept} kept)")
    for source, reason in sorted(summary.videos_failed.items()):
        table.add_row("[red]failed video[/red]", f"{Path(source).name}: {reason}")
    for source, reason in sorted(summary.videos_skipped.items()):
        table.add_row("skipped video", f"{Path(source).name}: {reason}")
    for reason, n in sorted(summary.dropped.items()):
        table.add_row("dropped", f"{n} x {reason}")
    for stage, n in sorted(summary.failed_by_stage.items()):
        table.add_row("[red]failed clips[/red]", f"{n} in {stage}")
    for stage, seconds in summary.stage_seconds.items():
        table.add_row("time", f"{stage}: {seconds:.1f} s for {summary.stage_items.get(stage, 0)} item(s)")
    for note in summary.notes:
        table.add_row("note", note)
    table.add_row("output", summary.output)
    out.print(table)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
