"""The ``newsanchor`` command line: one subcommand → one library function.

Each module of this package holds the commands of one stage and only parses their options and
calls the library; this file puts them together into the ``newsanchor`` app. Errors the user can
act on are printed as one line on stderr with a non-zero exit; progress goes to stderr,
machine-readable results (``--json``) to stdout.

    prepare.py   prepare                          recordings → dataset
    train.py     train mouth, train renderer      dataset → models
    evaluate.py  evaluate mouth|renderer|lipsync  models and anchors measured
    export.py    export onnx
    anchor.py    anchor create|list|check, bundle, synthesize, demo   recordings → anchor; models → anchor → video
    serve.py     serve                            the newsroom service
    common.py    one-line errors, progress bars, the --precision option (imported by all of them; imports none)
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .. import __version__
from . import anchor, evaluate, export, prepare, serve, train

app = typer.Typer(
    name="newsanchor",
    help="A virtual news anchor from a consenting person's own recordings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"newsanchor {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Turn news text or speech into a video of a specific, consenting person reading it."""


train_app = typer.Typer(help="Train the models of an anchor from a prepared dataset.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure trained models on a dataset's held-out test split.", no_args_is_help=True)
export_app = typer.Typer(help="Write trained models in other formats.", no_args_is_help=True)
anchor_app = typer.Typer(help="Make anchors from a presenter's recordings.", no_args_is_help=True)

# in the order `newsanchor --help` lists them
app.command("prepare")(prepare.prepare_command)
app.add_typer(train_app, name="train")
train_app.command("mouth")(train.train_mouth_command)
train_app.command("renderer")(train.train_renderer_command)
app.add_typer(evaluate_app, name="evaluate")
evaluate_app.command("mouth")(evaluate.evaluate_mouth_command)
evaluate_app.command("renderer")(evaluate.evaluate_renderer_command)
evaluate_app.command("lipsync")(evaluate.evaluate_lipsync_command)
app.add_typer(export_app, name="export")
export_app.command("onnx")(export.export_onnx_command)
app.add_typer(anchor_app, name="anchor")
anchor_app.command("create")(anchor.anchor_create_command)
anchor_app.command("list")(anchor.anchor_list_command)
anchor_app.command("check")(anchor.anchor_check_command)
app.command("bundle")(anchor.bundle_command)
app.command("synthesize")(anchor.synthesize_command)
app.command("demo")(anchor.demo_command)
app.command("serve")(serve.serve_command)


def run() -> None:  # pragma: no cover - console entry for `python -m newsanchor`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
