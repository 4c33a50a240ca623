"""The `plmgraph` command line: one Typer app, one module per group of commands.

This package is the only place that prints or exits.  Every command catches
`PlmgraphError` (bad spec, bad checkpoint, bad input) through `run`, prints its message
to stderr and exits with status 1; usage errors exit with status 2; no traceback is
ever shown for a user error.  Commands that only read specs (list, validate, show,
schema, diff, draw) never import torch, so they answer in well under a second.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from ..errors import PlmgraphError, UsageError

app = typer.Typer(
    name="plmgraph",
    help="Describe a pretrained language model as a YAML spec; validate, show, diff, draw, build and export it.\n\n"
    "SPEC arguments take a zoo name (`plmgraph list`) or a path to a .yaml file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")

OVERRIDE_HELP = (
    "Edit the spec without a new file: key=value,... with dotted paths (attention.kv_heads=8) "
    "and short names for sizes (layers, hidden, heads, vocab, ffn, max_positions). Repeatable."
)
JSON_HELP = "Print machine-readable JSON on stdout instead of tables."


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` to stderr and exit with `code` (1 invalid input, 2 usage)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def run(fn: Callable[[], T]) -> T:
    """Call `fn`, turning user errors into a message and an exit code, never a traceback."""
    try:
        return fn()
    except UsageError as e:
        fail(_escape(str(e)), 2)
    except PlmgraphError as e:
        fail(_escape(str(e)), 1)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def main() -> None:
    """Console-script entry point."""
    from . import build_cmds, diff_cmds, export_cmds, hf_cmds, spec_cmds  # noqa: F401  (each registers its commands on `app`)

    app()


__all__ = ["JSON_HELP", "OVERRIDE_HELP", "app", "err", "fail", "main", "out", "print_json", "run"]
