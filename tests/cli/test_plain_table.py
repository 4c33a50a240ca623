"""`plmgraph.cli.table.Table` draws a table off a terminal without rich: exactly rich's lines.

The reference is rich itself: each command's output through the plain path is compared with its
output through ``rich.table.Table``, for every zoo spec (``show``), the zoo (``list``) and diffs
between zoo specs; and a table the plain path cannot prove it draws as rich does goes to rich.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import plmgraph.cli
import plmgraph.cli.diff_cmds
import plmgraph.cli.spec_cmds  # noqa: F401  (registers list, show)
from plmgraph.cli import PIPE_WIDTH, _console_class, _LazyConsole, app
from plmgraph.cli.table import NARROW_BLOCKS, Table, narrow
from plmgraph.spec import zoo_names

ROOT = Path(__file__).resolve().parents[2]
ZOO = zoo_names()


@pytest.fixture(autouse=True)
def _no_colour_forced(monkeypatch):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)


def _fresh_out(monkeypatch) -> _LazyConsole:
    fresh = _LazyConsole()
    for module in (plmgraph.cli, plmgraph.cli.spec_cmds, plmgraph.cli.diff_cmds):
        monkeypatch.setattr(module, "out", fresh)
    return fresh


def _both(args: list[str], monkeypatch) -> tuple[str, str, int]:
    """(output drawn plain, output drawn by rich, how many tables were drawn plain)."""
    drawn = []
    plain = Table.plain

    def spy(self, width):
        text = plain(self, width)
        drawn.append(text is not None)
        return text

    with monkeypatch.context() as m:
        m.setattr(Table, "plain", spy)
        console = _fresh_out(m)
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        assert console._console is None, "the plain run made a rich console"
        got = r.output
    with monkeypatch.context() as m:
        _fresh_out(m)
        m.setattr(Table, "plain", lambda self, width: None)
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        want = r.output
    return got, want, sum(drawn)


def test_the_characters_taken_as_narrow_are_one_column_for_rich():
    from rich.cells import cell_len

    taken = [chr(cp) for lo, hi in NARROW_BLOCKS for cp in range(lo, hi + 1) if narrow(chr(cp))]
    assert len(taken) > 1000 and all(narrow(c) for c in "→−±×÷√∥αβ…")
    assert [c for c in taken if cell_len(c) != 1] == []
    assert not any(narrow(c) for c in "中文한글☰⌚\u0301\u200b")


@pytest.mark.parametrize("name", ZOO)
def test_show_tables_are_rich_tables(name, monkeypatch):
    got, want, drawn = _both(["show", name], monkeypatch)
    assert got == want
    assert drawn == 1


def test_list_table_is_the_rich_table(monkeypatch):
    got, want, drawn = _both(["list"], monkeypatch)
    assert got == want
    assert drawn == 1


@pytest.mark.parametrize(
    "pair", [*zip(ZOO, ZOO[1:], strict=False), ("gpt2", "llama-7b"), ("bert-base", "albert-base"),
             ("t5-small", "bart-base")])
@pytest.mark.parametrize("structure", [False, True])
def test_diff_tables_are_rich_tables(pair, structure, monkeypatch):
    got, want, drawn = _both(["diff", *pair, *(["--structure"] if structure else [])], monkeypatch)
    assert got == want
    assert drawn == got.count("┏") and (drawn or "no structural differences" in got)


def test_a_diff_with_no_changes(monkeypatch):
    got, want, drawn = _both(["diff", "gpt2", "gpt2"], monkeypatch)
    assert got == want and "no differences" in got


def _rich_lines(t: Table) -> str:
    buf = io.StringIO()
    _console_class()(file=buf, soft_wrap=True).print(t.to_rich())
    return buf.getvalue()


def _table(title: str | None = "t", rows: list[list[str]] | None = None, **options) -> Table:
    t = Table(title=title, title_justify="left", **options) if title is not None else Table(**options)
    t.add_column("name")
    t.add_column("value", justify="right")
    for r in rows if rows is not None else [["a", "1"], ["bb", "22"]]:
        t.add_row(*r)
    return t


@pytest.mark.parametrize(
    "table",
    [
        _table(),
        _table(None),
        _table("a title as long as this table", [["x", "1"], ["yyyyyyyyyyyyyyy", "2"]]),
        _table("a title longer than the table is wide, on one line all the same"),
        _table(rows=[["[bold]total[/]", "[bold]3[/]"], ["", ""], ["a → b", "−1 (×2)"]]),
    ],
)
def test_small_tables_are_rich_tables(table):
    got = table.plain(PIPE_WIDTH)
    assert got is not None
    assert got + "\n" == _rich_lines(table)


def test_sections_are_rich_rules():
    t = _table()
    t.add_section()
    t.add_row("c", "3", end_section=True)
    t.add_row("d", "4")
    t.add_section()
    assert t.plain(PIPE_WIDTH) + "\n" == _rich_lines(t)


@pytest.mark.parametrize(
    ("table", "width"),
    [
        (_table(rows=[["中文", "1"]]), PIPE_WIDTH),  # two columns a character
        (_table(rows=[["an :smile:", "1"]]), PIPE_WIDTH),  # an emoji code
        (_table(rows=[["two\nlines", "1"]]), PIPE_WIDTH),
        (_table(rows=[["a\ttab", "1"]]), PIPE_WIDTH),
        (_table(rows=[]), PIPE_WIDTH),
        (_table(), 10),  # wider than the page: rich wraps or cuts
        (_table(show_lines=True), PIPE_WIDTH),  # an option the plain path does not draw
    ],
)
def test_tables_the_plain_path_cannot_prove_go_to_rich(table, width, monkeypatch):
    assert table.plain(width) is None
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)
    _LazyConsole().print(table)
    assert buf.getvalue() == _rich_lines(table)


def test_a_cell_that_is_not_a_string_goes_to_rich():
    t = Table(title="t", title_justify="left")
    t.add_column("n")
    t.add_row(1)
    assert t.plain(PIPE_WIDTH) is None


def test_show_list_and_diff_never_import_rich_off_a_terminal():
    code = ("import sys\nfrom plmgraph.cli import main\n"
            "for args in (['show', 'gpt2'], ['list'], ['diff', 'gpt2', 'llama-7b']):\n"
            "    sys.argv = ['plmgraph', *args]\n"
            "    main()\n"
            "assert 'rich' not in sys.modules, 'imported rich'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "┏" in r.stdout and "gpt2" in r.stdout
