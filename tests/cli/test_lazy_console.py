"""`plmgraph.cli.out`/`err` write plain lines themselves off a terminal: byte for byte what rich writes.

The consoles are lazy so that ``validate`` and ``draw``, which print one line, never import rich.
The reference is rich itself: every line is printed both ways and compared, and the lines rich
would rewrite (emoji codes, escapes, tabs, control characters, unbalanced tags, a terminal,
FORCE_COLOR) must go to rich.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import plmgraph.cli
import plmgraph.cli.diff_cmds  # noqa: F401  (registers draw)
import plmgraph.cli.spec_cmds  # noqa: F401  (registers validate)
from plmgraph.cli import _console_class, _LazyConsole, app

ROOT = Path(__file__).resolve().parents[2]

PLAIN = [
    ("[green]ok[/] gpt2 (/work/main/specs/gpt2.yaml)", {"highlight": False}),
    ("[bold red]error:[/] bad.yaml line 3", {"highlight": False, "markup": True}),
    ("[bold]gpt2[/]  decoder  [dim]Radford et al. 2019; HF GPT2LMHeadModel[/]", {"highlight": False}),
    ("[bold]a[/bold] [dim]b[/dim] [green]c", {}),
    ("wrote /tmp/gpt2.svg", {"highlight": False}),
    ("plain words, numbers 1,234 and (brackets)", {}),
    ("", {}),
    ("  leading and trailing   ", {"highlight": False}),
    ("two\nlines", {"highlight": False}),
    ("gpt2 → llama-7b: no changes", {"highlight": False, "markup": False}),
    ("unicode é 中文 → ✓", {}),
    ("[x] literal [1, 2] with markup off", {"markup": False}),
    ("[1, 2], [CLS] and [ x ] are text to rich", {}),
    ("a very long line " * 40, {"highlight": False}),
]

RICH = [
    ("an emoji :smile: code", {}),
    ("spec.yaml:3:5: bad", {}),
    ("an escaped \\[green] tag", {}),
    ("C:\\path", {"markup": False}),
    ("a\ttab", {}),
    ("bell\x07 and carriage\rreturn", {}),
    ("\x1b[31mansi\x1b[0m", {"markup": False}),
    ("[link=https://example.org]a link[/link]", {}),
    ("[/] closes nothing", {}),
    ("[green]a[/bold]", {}),
    ("styled", {"style": "bold"}),
    ("no newline", {"end": ""}),
]


def _rich(text: str, kwargs: dict) -> str:
    buf = io.StringIO()
    _console_class()(file=buf, soft_wrap=True).print(text, **kwargs)
    return buf.getvalue()


def _lazy(text: str, kwargs: dict, monkeypatch: pytest.MonkeyPatch) -> tuple[str, bool]:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)
    console = _LazyConsole()
    plain = console._plain((text,), kwargs) is not None
    console.print(text, **kwargs)
    return buf.getvalue(), plain


@pytest.fixture(autouse=True)
def _no_colour_forced(monkeypatch):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(("text", "kwargs"), PLAIN)
def test_plain_lines_are_what_rich_writes(text, kwargs, monkeypatch):
    got, plain = _lazy(text, kwargs, monkeypatch)
    assert plain, "this line should not need rich"
    assert got == _rich(text, kwargs)


@pytest.mark.parametrize(("text", "kwargs"), RICH)
def test_lines_rich_would_change_go_to_rich(text, kwargs, monkeypatch):
    if text.startswith("[/]") or text == "[green]a[/bold]":
        assert not _LazyConsole()._plain((text,), kwargs)
        from rich.errors import MarkupError

        with pytest.raises(MarkupError):
            _rich(text, kwargs)
        return
    got, plain = _lazy(text, kwargs, monkeypatch)
    assert not plain
    assert got == _rich(text, kwargs)


def test_a_terminal_or_forced_colour_gets_rich(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Tty())
    assert _LazyConsole()._plain(("[green]ok[/] x",), {}) is None
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert _LazyConsole()._plain(("[green]ok[/] x",), {}) == "ok x"
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert _LazyConsole()._plain(("[green]ok[/] x",), {}) is None


def test_several_objects_and_other_objects_get_rich():
    assert _LazyConsole()._plain(("a", "b"), {}) is None
    assert _LazyConsole()._plain((1,), {}) is None


def test_a_pinned_width_makes_the_rich_console(monkeypatch):
    console = _LazyConsole()
    monkeypatch.setattr(console, "width", 50)
    assert console.width == 50 and console._console is not None
    assert console._plain(("x",), {}) is None  # a console that was set up is used as it was set up


def _fresh_consoles(monkeypatch) -> _LazyConsole:
    """A new `out` everywhere the commands read it (another test may have made the rich one)."""
    fresh = _LazyConsole()
    for module in (plmgraph.cli, plmgraph.cli.spec_cmds, plmgraph.cli.diff_cmds):
        monkeypatch.setattr(module, "out", fresh)
    return fresh


@pytest.mark.parametrize("args", [["validate", "gpt2", "bert-base"], ["draw", "gpt2", "-o", "{tmp}/gpt2.dot"]])
def test_commands_write_the_same_through_rich(args, tmp_path, monkeypatch):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    plain_console = _fresh_consoles(monkeypatch)
    plain = CliRunner().invoke(app, args)
    assert plain_console._console is None, "the plain run made a rich console"
    _fresh_consoles(monkeypatch)
    monkeypatch.setattr(_LazyConsole, "_plain", lambda self, objects, kwargs: None)
    rich = CliRunner().invoke(app, args)
    assert plain.exit_code == rich.exit_code == 0, (plain.output, rich.output)
    assert plain.output == rich.output
    assert plain.output.startswith(("ok gpt2", "wrote")), plain.output


@pytest.mark.parametrize("args", [["validate", "gpt2"], ["draw", "gpt2", "-o", "{tmp}/gpt2.dot"]])
def test_one_line_commands_never_import_rich(args, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = (f"import sys\nsys.argv = ['plmgraph', *{args!r}]\nfrom plmgraph.cli import main\nmain()\n"
            "assert 'rich' not in sys.modules, 'imported rich'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(("ok gpt2", "wrote"))
