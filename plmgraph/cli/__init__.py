"""The `plmgraph` command line: one Typer app, one module per group of commands.

This package is the only place that prints or exits.  Every command catches
`PlmgraphError` (bad spec, bad checkpoint, bad input) through `run`, prints its message
to stderr and exits with status 1; usage errors exit with status 2; no traceback is
ever shown for a user error.  Commands that only read specs (list, validate, show,
schema, diff, draw) never import torch, so they answer in well under a second.

Start-up time is part of the interface: the command modules import what a command needs
inside the command (the spec package, the graph, torch), so registering every command costs
only Typer, and ``plmgraph --help`` imports neither pydantic nor networkx nor torch.  A
spec-only command imports only the module that registers it (`SPEC_ONLY_MODULES`), and off a
terminal none of them imports rich: `out`/`err` write plain lines and `table.Table` draws
rich's tables itself wherever that is provably what rich would write.
``tools/bench_coldstart.py`` measures it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer

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


def _console_class() -> type:
    """`_Console`, made on first use: importing rich costs a spec command about 0.02 s."""
    global _CONSOLE_CLASS
    if _CONSOLE_CLASS is not None:
        return _CONSOLE_CLASS
    from rich.console import Console, ConsoleDimensions

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

    _CONSOLE_CLASS = _Console
    return _Console


_CONSOLE_CLASS: type | None = None

#: The markup tags the commands write, which mean nothing but colour off a terminal.
_PLAIN_TAGS = re.compile(r"\[(?:/|/?(?:bold|dim|italic|red|green|yellow|bold red|bold green|bold yellow))\]")


#: What rich's markup could take for the start of a tag (rich.markup.RE_TAGS).
_TAG_START = re.compile(r"\[[a-z#/@]")

#: What rich's emoji replacement could match (``:smile:``); rich keeps unknown names, this is wider.
_EMOJI = re.compile(r":\S*?:")


class _LazyConsole:
    """`out` and `err`: a rich console, made (and rich imported) only when a command needs one.

    Off a terminal, rich writes a line of plain text with its markup tags removed and nothing
    else changed, so `print` writes such a line itself when that is provably all rich would do:
    one string, no option but ``markup``/``highlight``, no console made yet (a test that pins a
    width gets rich), stdout/stderr not a terminal, no ``FORCE_COLOR``/``TTY_COMPATIBLE`` (which
    make rich colour a pipe), not inside IPython, and text with nothing rich would rewrite (see
    `plain_text`): no tag left after the known ones (``[CLS]`` is text to rich too), no
    backslash (escapes), no ``:name:`` (emoji codes such as ``:smile:``), no tab (expanded) and
    no control or other non-printing character (stripped).  Everything else (several objects,
    unbalanced tags) goes to the rich console; a `table.Table` is drawn the same way, plain when
    provably as rich would, else by rich.  ``tests/cli/test_lazy_console.py`` and
    ``tests/cli/test_plain_table.py`` check the plain output byte for byte against rich.
    """

    def __init__(self, stderr: bool = False) -> None:
        object.__setattr__(self, "_stderr", stderr)
        object.__setattr__(self, "_console", None)

    def _real(self) -> Any:
        if self._console is None:
            object.__setattr__(self, "_console", _console_class()(stderr=self._stderr, soft_wrap=True))
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real(), name, value)

    @property
    def file(self) -> Any:
        if self._console is not None:
            return self._console.file
        file = sys.stderr if self._stderr else sys.stdout
        return getattr(file, "rich_proxied_file", file) if file is not None else self._real().file

    def print(self, *objects: Any, **kwargs: Any) -> None:
        text = self._plain(objects, kwargs)
        if text is None:
            from .table import Table

            objects = tuple(o.to_rich() if isinstance(o, Table) else o for o in objects)
            self._real().print(*objects, **kwargs)
            return
        file = self.file
        file.write(text + "\n")
        file.flush()

    def _plain(self, objects: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The exact text rich would write off a terminal, or None where rich must decide."""
        if self._console is not None or not kwargs.keys() <= {"markup", "highlight"} or len(objects) != 1:
            return None
        if os.environ.get("FORCE_COLOR") is not None or "TTY_COMPATIBLE" in os.environ or "IPython" in sys.modules:
            return None
        file = sys.stderr if self._stderr else sys.stdout
        if file is None or getattr(file, "rich_proxied_file", None) is not None:
            return None
        try:
            if file.isatty():
                return None
        except (AttributeError, ValueError):
            return None
        obj = objects[0]
        if type(obj) is str:
            return plain_text(obj, kwargs.get("markup", True) is not False)
        from .table import Table

        return obj.plain(PIPE_WIDTH) if type(obj) is Table else None


def plain_text(text: str, markup: bool) -> str | None:
    """`text` as rich writes it off a terminal (markup tags removed), or None where rich would
    change more: an escape, an emoji code, a tab, a control character, a tag it does not know or
    does not balance."""
    if markup:
        if not _balanced(_PLAIN_TAGS.findall(text)):
            return None  # rich raises its MarkupError
        text = _PLAIN_TAGS.sub("", text)
        if _TAG_START.search(text):  # another tag, or what rich would take for one; "[CLS]" is text
            return None
    if "\\" in text or _EMOJI.search(text) or not all(line.isprintable() for line in text.split("\n")):
        return None
    return text


def _balanced(tags: list[str]) -> bool:
    """Whether every closing tag closes an open one, as rich requires (an open one may stay open)."""
    opened: list[str] = []
    for tag in tags:
        name = tag[1:-1]
        if not name.startswith("/"):
            opened.append(name)
        elif name == "/":
            if not opened:
                return False
            opened.pop()
        elif name[1:] in opened:
            del opened[len(opened) - 1 - opened[::-1].index(name[1:])]
        else:
            return False
    return True


out = _LazyConsole()
err = _LazyConsole(stderr=True)

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


#: The module that registers each spec-only command: such a call imports that module alone (the
#: others cost a few milliseconds of Typer declarations for nothing).  A command moved elsewhere
#: is still found: `main` then registers every module, as for any other command.
SPEC_ONLY_MODULES = {"list": "spec_cmds", "validate": "spec_cmds", "show": "spec_cmds", "schema": "spec_cmds",
                     "diff": "diff_cmds", "draw": "diff_cmds"}

_ALL_MODULES = ("build_cmds", "deploy_cmds", "diff_cmds", "eject_cmds", "export_cmds", "hf_cmds", "hf_spec_cmds",
                "report_cmds", "spec_cmds", "train_cmds")


def main() -> None:
    """Console-script entry point."""
    import importlib

    args = sys.argv[1:]
    module = SPEC_ONLY_MODULES.get(args[0]) if args else None
    if module is not None:
        # pydantic's first validator looks for plugins in the metadata of every installed distribution
        # (importlib.metadata, about 0.02 s); a command that only reads specs has no use for them.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
        importlib.import_module(f"{__name__}.{module}")
        one = _narrowed(args)
        if one is not app:
            one()
            return
    for name in _ALL_MODULES:  # each registers its commands on `app`
        importlib.import_module(f"{__name__}.{name}")
    _narrowed(args)()


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
