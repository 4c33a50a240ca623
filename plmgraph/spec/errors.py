"""Typed errors for everything that reads a spec.

A `SpecError` carries one or more `Problem`s; each names the file, line and column,
the dotted field path, the bad value and what would be allowed.  Only the command-line
module turns these into text on stderr and an exit code; library code raises them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: tuple[str | int, ...] = ()

    @property
    def field(self) -> str:
        """The dotted field path, e.g. ``block.attention.kv_heads`` or ``heads[0].kind``."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def location(self) -> str:
        """``file:line:column``, as much of it as is known ("" when nothing is)."""
        where = self.file or ("<spec>" if self.line is not None else "")
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        parts = [p for p in (self.location(), self.field) if p]
        return ": ".join([*parts, self.message])

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
        }


class PlmgraphError(Exception):
    """Base of every error caused by user input (bad spec, checkpoint, tensor shape, ...).

    The command line prints ``str(error)`` and exits with status 1; it never shows a traceback.
    """


@dataclass
class SpecError(PlmgraphError):
    """A spec could not be loaded, merged or validated."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    #: The most problems a message lists; a file with thousands of bad keys gets a count, not a book.
    SHOWN: ClassVar[int] = 10

    def __str__(self) -> str:
        shown = [str(p) for p in self.problems[: self.SHOWN]]
        if len(self.problems) > self.SHOWN:
            shown.append(f"... and {len(self.problems) - self.SHOWN} more problems")
        return "\n".join(shown)

    @classmethod
    def one(cls, message: str, file: str | Path | None = None, line: int | None = None,
            column: int | None = None, path: tuple[str | int, ...] = ()) -> SpecError:
        return cls([Problem(message, str(file) if file else None, line, column, path)])
