"""`plmgraph report` (torch-free): one self-contained HTML page about an architecture.

    plmgraph report bert-base -o bert.html                  # diagram, YAML, stats, block kinds, relatives
    plmgraph report llama2-7b -o llama.html --lang zh       # the explanations in Chinese
    plmgraph report gpt2 llama2-7b -o gpt2-vs-llama2.html   # two side by side, the diff highlighted
    plmgraph report runs/tiny -o tiny.html                  # a training run: its last checkpoint + loss curve
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import OVERRIDE_HELP, app, out, run


@app.command("report")
def report_cmd(
    specs: Annotated[
        list[str], typer.Argument(help="One zoo name, spec file, saved model folder, Hugging Face "
                                  "folder or training run folder (adds its loss curve), or two to compare.",
                                  metavar="SPEC [SPEC_B]")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The .html file to write. Default: <name>.html or "
                                  "<a>-vs-<b>.html.")
    ] = None,
    lang: Annotated[
        str, typer.Option("--lang", help="Language of the page and the block-kind explanations: en or zh.")
    ] = "en",
    relatives: Annotated[
        int, typer.Option("--relatives", min=0, help="How many nearest zoo relatives to list, with their diffs.")
    ] = 3,
    seq_len: Annotated[
        int | None, typer.Option("--seq-len", "-T", min=1, help="Context length for FLOPs and the KV cache "
                                 "(default: max_positions; for two specs the smaller one).")
    ] = None,
    override: Annotated[list[str] | None, typer.Option("--override", "-O", help="Edit the (last) spec. "
                                                       + OVERRIDE_HELP)] = None,
) -> None:
    """Write one self-contained HTML page about an architecture (or two, side by side with their diff)."""

    def go() -> None:
        from plmgraph.exporters.report import LANGS, write_report

        from ..errors import UsageError
        from .outputs import check_file

        if not 1 <= len(specs) <= 2:
            raise UsageError(f"give one SPEC, or two to compare, not {len(specs)}")
        if lang not in LANGS:
            raise UsageError(f"--lang must be one of {', '.join(LANGS)}, not {lang!r}")
        if output is not None:
            if output.suffix.lower() not in (".html", ".htm"):
                raise UsageError(f"cannot write {output.name!r}: a report is an .html file")
            check_file(output)  # before any work: a bad -o fails fast
        a, b = (specs[0], None) if len(specs) == 1 else (specs[0], specs[1])
        kw = {"overrides_b": override} if b is not None else {"overrides": override}
        written = write_report(a, b, output, lang=lang, relatives=relatives, seq_len=seq_len, **kw)
        out.print(f"wrote {written}", highlight=False)

    run(go)
