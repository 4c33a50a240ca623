"""The `plmgraph` command line: one Typer app, one module per group of commands.

This package is the only place that prints or exits.  Every command catches
`PlmgraphError` (bad spec, bad checkpoint, bad input) through `run`, prints its message
to stderr and exits with status 1; usage errors exit with status 2; no traceback is
ever shown for a user error.  Commands that only read specs (list, validate, show,
schema, diff, draw) never import torch, so they answer in well under a second.

Start-up time is part of the interface: the command modules import what a command needs
inside the command (the spec package, the graph, torch), so registering every command costs
only Typer and rich, and ``plmgraph --help`` imports neither pydantic nor networkx nor torch.
``tools/bench_coldstart.py`` measures it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console, ConsoleDimensions

app = typer.Typer(
    name="plmgraph",
    help="Describe a pretrained language model as a YAML spec; validate, show, diff, draw, build and export it.\n\n"
    "SPEC arguments take a zoo name (`plmgraph list`) or a path to a .yaml file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: The width tables are laid out in when stdout is not a terminal (a pipe, a file): wide
#: enough that no name is ever cut to ``alber…``.
PIPE_WIDTH = 10_000


class _Console(Console):
    """A rich console that lays out for a very wide page when it does not write to a terminal.

    rich sizes a console from the terminal of stdin/stdout/stderr or from ``COLUMNS``, else 80
    columns, so ``plmgraph list | cat`` would cut names.  An explicitly set width (tests pin
    one) still wins.
    """

    _pinned = False

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if not self._pinned and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._pinned = True
        self._width, self._height = new_size

    @property
    def width(self) -> int:
        return self.size.width

    @width.setter
    def width(self, width: int) -> None:
        self._pinned = True
        self._width = width


out = _Console(soft_wrap=True)
err = _Console(stderr=True, soft_wrap=True)

T = TypeVar("T")

OVERRIDE_HELP = (
    "Edit the spec without a new file: key=value,... with dotted paths (attention.kv_heads=8) "
    "and short names for sizes (layers, hidden, heads, vocab, ffn, max_positions). Repeatable."
)
JSON_HELP = "Print machine-readable JSON on stdout instead of tables."


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        sys.stdout.write(f"plmgraph {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` to stderr and exit with `code` (1 invalid input, 2 usage)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def run(fn: Callable[[], T]) -> T:
    """Call `fn`, turning user errors into a message and an exit code, never a traceback."""
    from ..errors import PlmgraphError, UsageError  # here, not at import: it loads the spec package

    try:
        return fn()
    except UsageError as e:
        fail(_escape(str(e)), 2)
    except PlmgraphError as e:
        fail(_escape(str(e)), 1)
    except BrokenPipeError:  # `plmgraph list | head`: the reader left; nothing to say, nowhere to say it
        _quiet_stdout()
        raise typer.Exit(0) from None
    except OSError as e:  # the file system said no (permissions, full disk, a path under a file, ...)
        where = f"{e.filename}: " if e.filename else ""
        fail(_escape(f"{where}{e.strerror or e}"), 1)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into a closed pipe stays silent."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests' captured stdout)
        pass


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def main() -> None:
    """Console-script entry point."""
    from . import (  # noqa: F401  (each registers its commands on `app`)
        build_cmds,
        deploy_cmds,  # noqa: F401  (run, bench)
        diff_cmds,
        eject_cmds,  # noqa: F401
        export_cmds,
        hf_cmds,
        hf_spec_cmds,  # noqa: F401  (spec-from-hf)
        report_cmds,  # noqa: F401
        spec_cmds,
        train_cmds,  # noqa: F401  (train, eval, generate)
    )

    _narrowed(sys.argv[1:])()


def _narrowed(args: list[str]) -> typer.Typer:
    """`app` with only the command that `args` start with, when they name one.

    Typer turns every registered command into a Click command on each call (signatures, one
    pydantic adapter per parameter), which would be a third of a spec-only command's start-up;
    the command asked for is all a call needs.  The root ``--help``, ``--version``, a mistyped
    command (for Click's "No such command") and no command at all get the whole app.
    """
    import copy

    from typer.main import get_command_name

    if not args or args[0].startswith("-"):
        return app
    asked = [c for c in app.registered_commands if (c.name or get_command_name(c.callback.__name__)) == args[0]]
    if len(asked) != 1:
        return app
    one = copy.copy(app)
    one.registered_commands = asked
    return one


__all__ = ["JSON_HELP", "OVERRIDE_HELP", "PIPE_WIDTH", "app", "err", "fail", "main", "out", "print_json", "run"]
