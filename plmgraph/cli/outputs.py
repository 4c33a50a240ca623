"""Checks on output paths, made before a command does its work (torch-free).

A command that writes a file (``draw -o``, ``diff -o``) checks first that the file can be
written there, so a bad ``-o`` costs one clear message and exit status 1, not a traceback
after the work is done.  Folders (``build -o``, ``import-hf``, ``export-hf``) are checked by
`plmgraph.compile.io.check_folder`, which also guards the files already in them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import PlmgraphError


class OutputError(PlmgraphError):
    """An output path cannot be written (exit status 1)."""


def check_file(path: str | os.PathLike) -> Path:
    """`path` as a Path, or an `OutputError` when no file can be written there.

    Refused: an existing folder, a path under a file, and a place where the nearest existing
    folder does not take a new file (a read-only or virtual file system such as ``/proc``).
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p}: is a folder; give a file name such as {p / 'model.svg'}")
    if p.exists():
        where = p.parent
    else:
        where = p.parent
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            raise OutputError(f"{p}: cannot write there, {where} is a file, not a folder")
    try:  # root passes os.access everywhere (even /proc), so try for real
        fd, probe = tempfile.mkstemp(prefix=".plmgraph-probe-", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{p}: cannot write there ({e.strerror or e})") from None
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"{p}: cannot write there (the file is read-only)")
    return p


__all__ = ["OutputError", "check_file"]
