"""`Table`: the part of ``rich.table.Table`` the commands use, laid out without rich off a terminal.

``show``, ``diff`` and ``list`` print one or two tables.  Off a terminal (a pipe, a file, a test)
rich draws them with box characters and no colour, at `PIPE_WIDTH` columns, so nothing is
wrapped or cut; importing rich for that costs a spec command about 0.02 s.  This class records
what a command asks for; `plain` draws exactly rich's lines when it can prove they are rich's
(every cell a string in which `plain_text` finds nothing rich would rewrite, widths one column a
character, the table within the page), and `to_rich` replays the calls on a real
``rich.table.Table`` for everything else (a terminal, a pinned width, other options, other text).
``tests/cli/test_plain_table.py`` compares both ways, line for line, on every zoo spec.
"""

from __future__ import annotations

from typing import Any

#: Where the non-ASCII characters of the commands' tables come from (Latin, Greek, Cyrillic,
#: punctuation, arrows, mathematical operators, box drawing): a character there is one column
#: wide for rich when unicodedata calls it neither wide nor combining nor unassigned.  Blocks
#: whose widths moved between Unicode versions (symbols, Hangul, CJK) are left to rich; the
#: test checks every character of these blocks against ``rich.cells.cell_len``.
NARROW_BLOCKS = ((0x80, 0x24F), (0x370, 0x4FF), (0x2000, 0x22FF), (0x2500, 0x257F))
_ODD = frozenset({"Mn", "Me", "Mc", "Cf", "Cc", "Zl", "Zp", "Cs", "Co", "Cn"})

_TABLE_OPTIONS = {"title", "title_justify"}
_COLUMN_OPTIONS = {"justify", "style", "no_wrap", "overflow"}  # style: no colour off a terminal
_ROW_OPTIONS = {"style", "end_section"}


class Table:
    """Record a table; draw it plain (`plain`) or hand it to rich (`to_rich`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def add_column(self, *args: Any, **kwargs: Any) -> None:
        self._calls.append(("add_column", args, kwargs))

    def add_row(self, *args: Any, **kwargs: Any) -> None:
        self._calls.append(("add_row", args, kwargs))

    def add_section(self) -> None:
        self._calls.append(("add_section", (), {}))

    def to_rich(self) -> Any:
        from rich.table import Table as RichTable

        t = RichTable(*self._args, **self._kwargs)
        for name, args, kwargs in self._calls:
            getattr(t, name)(*args, **kwargs)
        return t

    def plain(self, page_width: int) -> str | None:
        """rich's lines for this table on a colourless page `page_width` wide, or None."""
        from . import plain_text

        if self._args or not self._kwargs.keys() <= _TABLE_OPTIONS:
            return None
        if self._kwargs.get("title_justify", "left") != "left":
            return None
        columns: list[tuple[str, str]] = []  # (header, justify)
        rows: list[list[str]] = []
        sections: list[bool] = []  # a rule below row i
        for name, args, kwargs in self._calls:
            if name == "add_column":
                if len(args) > 1 or not kwargs.keys() <= _COLUMN_OPTIONS or rows:
                    return None
                header = plain_text(args[0] if args else "", markup=True)
                justify = kwargs.get("justify", "left")
                if header is None or justify not in ("left", "right"):
                    return None
                columns.append((header, justify))
            elif name == "add_row":
                if not kwargs.keys() <= _ROW_OPTIONS or len(args) != len(columns):
                    return None
                cells = [plain_text(c, markup=True) if type(c) is str else None for c in args]
                if any(c is None for c in cells):
                    return None
                rows.append(cells)  # type: ignore[arg-type]
                sections.append(bool(kwargs.get("end_section")))
            elif rows:  # add_section: a rule below the last row
                sections[-1] = True
        if not columns or not rows:
            return None
        texts = [h for h, _ in columns] + [c for r in rows for c in r]
        if any("\n" in t or not _narrow(t) for t in texts):
            return None
        widths = [max(len(r[i]) for r in [[h for h, _ in columns], *rows]) + 2 for i in range(len(columns))]
        width = sum(widths) + len(widths) + 1
        title = self._kwargs.get("title")
        if title is not None:
            title = plain_text(title, markup=True) if type(title) is str else None
            if title is None or "\n" in title or not _narrow(title):
                return None  # (a title wider than the table stays one line: rich's soft wrap)
        if width > page_width:
            return None

        def line(left: str, fill: str, mid: str, right: str) -> str:
            return left + mid.join(fill * w for w in widths) + right

        def cells(values: list[str], edge: str) -> str:
            parts = [" " + (v.rjust(w - 2) if just == "right" else v.ljust(w - 2)) + " "
                     for v, w, (_, just) in zip(values, widths, columns, strict=True)]
            return edge + edge.join(parts) + edge

        lines = [] if title is None else [title]
        lines += [line("┏", "━", "┳", "┓"), cells([h for h, _ in columns], "┃"), line("┡", "━", "╇", "┩")]
        for i, (row, rule) in enumerate(zip(rows, sections, strict=True)):
            lines.append(cells(row, "│"))
            if rule and i < len(rows) - 1:
                lines.append(line("├", "─", "┼", "┤"))
        lines.append(line("└", "─", "┴", "┘"))
        return "\n".join(lines)


def narrow(c: str) -> bool:
    """Whether rich gives character `c` one column (see `NARROW_BLOCKS`)."""
    if c.isascii():
        return True
    import unicodedata

    cp = ord(c)
    return (any(lo <= cp <= hi for lo, hi in NARROW_BLOCKS) and unicodedata.category(c) not in _ODD
            and unicodedata.east_asian_width(c) in ("Na", "N", "A", "H"))


def _narrow(text: str) -> bool:
    return text.isascii() or all(narrow(c) for c in text)


__all__ = ["NARROW_BLOCKS", "Table", "narrow"]
