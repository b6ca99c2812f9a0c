"""``newsanchor serve``: the newsroom's web page and REST API over a durable job queue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import PRECISION_HELP, checked_precision, user_errors


def serve_command(
    anchors: Annotated[Path, typer.Option(help="Folder of anchor bundles, one sub-folder each (also keeps the job database, outputs and token).")],
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback requires a bearer token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes rendering videos in parallel.")] = 1,
    anchor_workers: Annotated[int, typer.Option(help="Worker processes training anchors (the page's Anchors section, POST /api/anchors) beside the video workers; 0: this machine trains none.")] = 1,
    db: Annotated[Optional[str], typer.Option(help="Job database: a SQLite file (default: ANCHORS/.newsanchor-jobs.sqlite), or postgresql://user@host/db to share one queue between machines.")] = None,
    token: Annotated[Optional[str], typer.Option(envvar="NEWSANCHOR_TOKEN", help="Bearer token clients must send (default beyond loopback: a random one saved in ANCHORS/.newsanchor-token).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1… for the workers (default: cuda when present).")] = None,
    compile_renderer: Annotated[bool, typer.Option("--compile", help="Workers compile each anchor's renderer on first use: ~40 s once, then ~1.4× faster frames on CPUs.")] = False,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = "auto",
    allowed_host: Annotated[Optional[list[str]], typer.Option(help="A name clients reach the service by (e.g. behind a reverse proxy), beside localhost and --host; repeatable. Requests naming another host are refused.")] = None,
    trusted_proxy: Annotated[Optional[list[str]], typer.Option(help="IP address or network of a reverse proxy whose X-Forwarded-For names the client; repeatable (default: the header is ignored).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", envvar="NEWSANCHOR_SERVE_CONFIG", help="YAML file of further settings: how anchors are trained (anchor_training: minutes, plan), see newsanchor.serve.settings.ServeConfig.", show_default=False)] = None,
) -> None:
    """Run the newsroom: a web page and REST API (docs at /docs) queueing videos and new anchors for worker processes."""
    from ..serve.service import run_service

    with user_errors():
        run_service(anchors, host=host, port=port, workers=workers, anchor_workers=anchor_workers, db=db, token=token, device=device,
                    compile_renderer=compile_renderer, precision=checked_precision(precision), allowed_hosts=tuple(allowed_host or ()),
                    trusted_proxies=tuple(trusted_proxy or ()), config=config)
