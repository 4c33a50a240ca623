"""plmgraph.exporters.report and `plmgraph report`: what the page says, that it is self-contained
and escaped, and, in a real headless Chromium, that it renders without a console error.

The browser test drives Debian's `chromium` (installed by ``tools/install.sh --test``) through
the DevTools protocol with `websocket-client`: it collects console messages, log entries and
exceptions while each page loads, queries the live DOM (diagram, tables, chart, explanations)
and takes a screenshot that must not be blank.  It is skipped only when no Chromium is on PATH.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from plmgraph.exporters import report as rp
from typer.testing import CliRunner

import plmgraph.cli.report_cmds  # noqa: F401  (registers `report`)
from plmgraph.cli import app
from plmgraph.kinds import KINDS, MissingFacet
from plmgraph.spec import zoo_names

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")


@pytest.fixture(scope="module")
def llama() -> str:
    return rp.report_html("llama3-8b")


@pytest.fixture(scope="module")
def compare() -> str:
    return rp.report_html("gpt2", "llama2-7b", relatives=1)


def _section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, f"no section {sid}"
    return m.group(1)


def _text(fragment: str) -> str:
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


# ------------------------------------------------------------------------------- content


@needs_dot
def test_one_spec_has_every_part(llama: str) -> None:
    for sid in ("diagram", "cost", "spec", "kinds", "relatives"):
        assert f'<section id="{sid}">' in llama
    diagram = _section(llama, "diagram")
    assert "<svg" in diagram and "× 32" in _text(diagram) and "Masked grouped-query attention" in _text(diagram)
    for tid in ("t-params", "t-flops", "t-kv", "t-memory"):
        assert f'<table id="{tid}">' in llama
    cost = _text(_section(llama, "cost"))
    assert "8,030,261,248" in cost  # HF LlamaForCausalLM's count, from pg.stats
    assert "512 KiB" not in cost and "128 KiB" in cost  # GQA: 32 layers · 2 · 8 kv heads · 128 · 2 bytes
    assert llama.count('class="bar"') >= 4  # the parameter chart: one bar per block
    yaml = _text(_section(llama, "spec"))
    assert "kind: rmsnorm" in yaml and "kv_heads: 8" in yaml
    assert "extends chain: llama3-8b.yaml ← llama2-7b.yaml ← llama-7b.yaml ← gpt2.yaml" in yaml
    assert "# LLaMA 2 7B" in yaml  # each file of the chain, comments included


def test_every_kind_explains_itself_in_english_and_chinese() -> None:
    for name, k in KINDS.items():
        en, zh = k.explain("en"), k.explain("zh")
        assert en and zh and en != zh, name
        assert re.search(r"[\u4e00-\u9fff]", zh), f"{name}: the Chinese explanation has no Chinese"
        assert en.count("`") % 2 == 0 and zh.count("`") % 2 == 0, f"{name}: unbalanced formula backticks"
    with pytest.raises(MissingFacet, match="norm/rmsnorm.*'fr'"):
        KINDS["norm/rmsnorm"].explain("fr")


@pytest.mark.parametrize(("spec", "kind", "formula"), [
    ("llama3-8b", "norm/rmsnorm", "x / rms(x) · γ"),
    ("llama3-8b", "position/rope", "⟨R_m q, R_n k⟩"),
    ("llama3-8b", "attention/self", "GQA"),
    ("llama3-8b", "mlp/gated", "SwiGLU"),
    ("bert-base", "objective/mlm", "80/10/10"),
    ("bert-base", "residual/sequential", "LN(x + f(x))"),
    ("t5-base", "position/t5_relative", "bucket(j − i)"),
    ("glm-130b", "residual/deepnorm", "LN(α·x + f(x))"),
])
def test_the_kinds_a_spec_uses_are_explained_with_their_formula(spec: str, kind: str, formula: str) -> None:
    page = rp.report_html(spec, relatives=0)
    m = re.search(rf'<div class="kind" data-kind="{re.escape(kind)}">(.*?)</div>', page, re.S)
    assert m, f"{spec}: no explanation of {kind}"
    assert formula in _text(m.group(1))
    assert '<code class="f">' in m.group(1)


def test_only_the_kinds_used_are_explained() -> None:
    used = rp.kinds_used(__import__("plmgraph").resolve("llama2-7b"))
    assert list(used)[:4] == ["embedding/token", "position/rope", "norm/rmsnorm", "attention/self"]
    assert "norm/layernorm" not in used and "position/learned" not in used
    assert not any(k.startswith(("input/", "op/")) or k == "residual/add" for k in used)
    assert used["residual/sequential"] == ["sequential, pre-norm"]
    assert {"objective/clm", "tuning/full", "init/normal"} <= set(used)


def test_a_kind_without_an_explanation_says_so_visibly(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(self: Any, lang: str) -> str:
        raise self.missing("explain")

    monkeypatch.setattr(type(KINDS["norm/rmsnorm"]), "explain", missing)
    page = rp.report_html("llama2-7b", relatives=0)
    m = re.search(r'data-kind="norm/rmsnorm">(.*?)</div>', page, re.S)
    assert m and '<p class="missing">no explanation yet</p>' in m.group(1)
    assert "暂无说明" in rp.report_html("llama2-7b", relatives=0, lang="zh")


def test_chinese_page() -> None:
    page = rp.report_html("bert-base", relatives=0, lang="zh")
    assert '<html lang="zh-CN">' in page
    assert "模块类型说明" in page and "参数量" in page
    assert "80/10/10" in page and "掩码" in page  # MLM, explained in Chinese
    with pytest.raises(rp.UsageError, match="unknown report language 'fr'"):
        rp.report_html("bert-base", lang="fr")


def test_nearest_relatives() -> None:
    import plmgraph as pg

    rel = rp.nearest_relatives(pg.resolve("bert-base"), 3)
    assert [d.a.name for d in rel][0] == "bert-large"
    assert all(d.b.name == "bert-base" for d in rel) and "bert-base" not in [d.a.name for d in rel]
    assert [d.distance for d in rel] == sorted(d.distance for d in rel)
    page = rp.report_html("bert-base", relatives=2)
    rows = _section(page, "relatives")
    assert "bert-large" in rows and "diff from bert-large" in rows and "dims: hidden: 1024 → 768" in _text(rows)


@needs_dot
def test_two_specs_side_by_side_with_the_diff_highlighted(compare: str) -> None:
    assert compare.index('<section id="changes">') < compare.index('<section id="diagram">')
    changes = _section(compare, "changes")
    structural = re.findall(r'<tr class="structural[^"]*">(.*?)</tr>', changes, re.S)
    assert any("LayerNorm → RMSNorm" in _text(r) for r in structural)
    assert any("GELU (tanh) → SwiGLU" in _text(r) for r in structural)
    assert re.search(r'<tr class="minor[^"]*">.*?vocab.*?50257 → 32000', changes, re.S)
    diagram = _section(compare, "diagram")
    assert "<svg" in diagram and "gpt2 → llama2-7b" in _text(diagram)
    params = re.search(r'<table id="t-params">(.*?)</table>', compare, re.S).group(1)
    assert "124,439,808" in params and "6,738,415,616" in params and "+6,613,975,808 (×54.2)" in _text(params)
    yaml = _section(compare, "spec")
    assert '<span class="ln del">    kind: layernorm</span>' in yaml
    assert '<span class="ln ins">    kind: rmsnorm</span>' in yaml
    assert '<span class="ln">  placement: pre</span>' in yaml  # the same in both: not marked
    kinds = _section(compare, "kinds")
    assert 'data-kind="norm/layernorm"' in kinds and 'data-kind="norm/rmsnorm"' in kinds
    assert compare.count('class="chart"') == 2


@needs_dot
def test_the_page_is_self_contained(llama: str, compare: str) -> None:
    for page in (llama, compare):
        assert "Content-Security-Policy" in page and "default-src 'none'" in page
        assert not re.search(r"<(script|link|iframe|object|embed|img)\b", page, re.I)
        assert not re.search(r"\b(src|href)\s*=\s*[\"'](?!#)", page, re.I)  # only in-page anchors
        assert "url(" not in page and "@import" not in page and "@font-face" not in page
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
        assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


def test_everything_from_the_spec_is_escaped(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    (tmp_path / "evil.yaml").write_text(
        f"# {evil} </pre><img src=x>\nextends: gpt2\nname: evil\nsource: '{evil} & \"quotes\"'\n"
        "sizes: {layers: 2}\n", encoding="utf-8")
    page = rp.report_html(tmp_path / "evil.yaml", relatives=1)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&amp; &quot;quotes&quot;" in page


def test_a_saved_folder_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "spec.yaml").write_text("extends: gpt2\nname: tiny\nsizes: {layers: 2}\n")
    page = rp.report_html(tmp_path / "run", relatives=1, overrides="hidden=128,heads=2")
    assert "<title>tiny · plmgraph report</title>" in page
    assert "hidden: 128" in _text(_section(page, "spec")) and "layers (decoder)" in page


@pytest.mark.parametrize("name", zoo_names())
def test_every_zoo_spec_reports(name: str) -> None:
    page = rp.report_html(name, relatives=0, lang="zh" if len(name) % 2 else "en")
    assert '<table id="t-params">' in page and 'class="chart"' in page
    assert "no explanation yet" not in page and "暂无说明" not in page


def test_a_hugging_face_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 64, "n_head": 2,
        "vocab_size": 1000, "n_positions": 128}))
    for ref in (tmp_path, tmp_path / "config.json"):
        page = rp.report_html(ref, relatives=1)
        assert "kind: layernorm" in _text(_section(page, "spec")) and "vocab: 1000" in _text(page)


def _run(tmp_path: Path, checkpoint: bool = True) -> Path:
    """A training run folder as `plmgraph train` writes it (train.json, LATEST, checkpoints/, metrics.jsonl)."""
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000040").mkdir(parents=True)
    (run / "train.json").write_text('{"plmgraph_run": 1, "config": {}}')
    if checkpoint:
        (run / "LATEST").write_text("step-000040\n")
        (run / "checkpoints" / "step-000040" / "spec.yaml").write_text(
            "extends: gpt2\nname: tiny-run\nsizes: {layers: 2, hidden: 64, heads: 2}\n")
    rows = [{"step": i, "loss": 6.0 - i / 10} for i in range(1, 41)]
    rows += [{"step": i, "eval": {"loss": 6.2 - i / 10}} for i in (20, 40)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 41, "lo')  # cut short
    return run


def test_a_training_run_adds_its_loss_curve(tmp_path: Path) -> None:
    page = rp.report_html(_run(tmp_path), relatives=0)
    assert "<title>tiny-run · plmgraph report</title>" in page
    loss = _section(page, "training")
    assert loss.count('<polyline class="train"') == 1 and loss.count('<circle class="eval"') == 2
    assert "training loss" in loss and "held-out loss" in loss
    assert "训练损失" in rp.report_html(_run(tmp_path / "zh"), relatives=0, lang="zh")
    with pytest.raises(rp.PlmgraphError, match="has no checkpoint yet"):
        rp.report_html(_run(tmp_path / "fresh", checkpoint=False))
    assert 'id="training"' not in rp.report_html("gpt2", relatives=0)


def test_without_graphviz_the_dot_source_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rp.shutil, "which", lambda _: None)
    page = rp.report_html("gpt2", relatives=0)
    diagram = _section(page, "diagram")
    assert "<svg" not in diagram and '<pre class="dot">' in diagram and "apt-get install graphviz" in diagram


# ----------------------------------------------------------------------------------- CLI


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = CliRunner()
    out = tmp_path / "bert.html"
    r = cli.invoke(app, ["report", "bert-base", "-o", str(out), "--lang", "zh", "--relatives", "1"])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output and "模块类型说明" in out.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    r = cli.invoke(app, ["report", "gpt2", "llama2-7b", "--relatives", "0", "-O", "layers=4"])
    assert r.exit_code == 0, r.output
    assert "layers: 4" in (tmp_path / "gpt2-vs-llama2-7b.html").read_text(encoding="utf-8")
    for args, code, message in (
        (["report", "no-such-spec"], 1, "not a spec file or zoo name"),
        (["report", "gpt2", "-o", "x.svg"], 2, "a report is an .html file"),
        (["report", "gpt2", "--lang", "fr"], 2, "--lang must be one of en, zh"),
        (["report", "a", "b", "c"], 2, "give one SPEC, or two to compare, not 3"),
        (["report", "gpt2", "-o", str(tmp_path)], 2, "a report is an .html file"),
        (["report", "gpt2", "-o", str(tmp_path / "f.html" / "x.html")], 1, "cannot write there"),
    ):
        if "f.html" in args[-1]:
            (tmp_path / "f.html").write_text("")
        r = cli.invoke(app, args)
        assert r.exit_code == code, (args, r.output)
        assert message in r.output and "Traceback" not in r.output


# ------------------------------------------------------------------------------- browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A headless Chromium and one page, driven through the DevTools protocol."""

    def __init__(self, binary: str, profile: Path) -> None:
        import websocket

        self.proc = subprocess.Popen(
            [binary, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--mute-audio",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not start its DevTools server")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        pages = []
        while not pages and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as f:
                pages = [t for t in json.load(f) if t["type"] == "page"]
            time.sleep(0.05)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=1600, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait(self, event: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == event for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(event)

    def open(self, path: Path) -> list[str]:
        """Load `path`; return the console errors, warnings, log entries and exceptions it caused."""
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait("Page.loadEventFired")
        self.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted
        return self.problems()

    def problems(self) -> list[str]:
        found = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "warning", "assert"):
                found.append(f"console.{p['type']}: {[a.get('value') for a in p['args']]}")
            elif m == "Runtime.exceptionThrown":
                found.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                found.append(f"{p['entry']['source']} {p['entry']['level']}: {p['entry']['text']}")
        return found

    def eval(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


#: What the test reads from the live DOM of a report.
DOM_PROBE = """(() => {
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const rows = id => document.querySelectorAll(`#${id} tbody tr`).length;
  return {
    title: document.title,
    diagram: box(document.querySelector('#diagram svg')),
    diagramNodes: document.querySelectorAll('#diagram svg g.node').length,
    tables: Object.fromEntries(['t-params', 't-flops', 't-kv', 't-memory', 't-changes'].map(id => [id, rows(id)])),
    bars: document.querySelectorAll('#chart svg.chart g.bar').length,
    barWidths: [...document.querySelectorAll('#chart svg.chart rect')].map(r => r.getBBox().width),
    kinds: document.querySelectorAll('#kinds .kind').length,
    formulas: document.querySelectorAll('#kinds code.f').length,
    missing: document.querySelectorAll('#kinds .missing').length,
    relatives: document.querySelectorAll('#relatives table.relatives tbody tr').length,
    structural: document.querySelectorAll('#t-changes tr.structural').length,
    yamlMarked: document.querySelectorAll('#yaml .ln.del, #yaml .ln.ins').length,
    width: document.documentElement.scrollWidth,
  };
})()"""


#: Draws characters in the page's own font stack (with the browser's fallback, as the page
#: renders them) and compares their pixels: without a font that has them, every character is
#: the same missing-glyph box (tofu), so two different characters come out identical.
GLYPH_PROBE = """((chars) => {
  const font = getComputedStyle(document.querySelector('h1') || document.body).fontFamily;
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const g = c.getContext('2d', {willReadFrequently: true});
  const draw = ch => { g.clearRect(0, 0, 64, 64); g.font = `40px ${font}`; g.fillStyle = '#000';
    g.fillText(ch, 8, 48); return Array.from(g.getImageData(0, 0, 64, 64).data).join(','); };
  const blank = draw(' ');
  const shapes = chars.map(draw);
  return {inked: shapes.every(s => s !== blank), distinct: new Set(shapes).size};
})(%s)"""


def _cjk_chars(browser: Any, n: int = 4) -> list[str]:
    """The first `n` distinct Chinese characters of the page's text."""
    text = browser.eval("document.body.innerText")
    return list(dict.fromkeys(re.findall(r"[\u4e00-\u9fff]", text)))[:n]


def _not_blank(png: bytes) -> dict[str, float]:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    small = img.resize((160, 200))
    raw = small.tobytes()
    pixels = Counter(raw[i:i + 3] for i in range(0, len(raw), 3))
    background = pixels.most_common(1)[0][0]
    ink = sum(n for p, n in pixels.items() if sum(abs(a - b) for a, b in zip(p, background, strict=True)) > 60)
    return {"width": img.width, "height": img.height, "colors": len(pixels), "ink": ink / (160 * 200)}


@pytest.fixture(scope="module")
def browser() -> Any:
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium on PATH (tools/install.sh --test installs Debian's `chromium`)")
    pytest.importorskip("websocket", reason="the DevTools client websocket-client is a test dependency")
    pytest.importorskip("PIL", reason="pillow (a test dependency) decodes the screenshot")
    profile = Path(tempfile.mkdtemp(prefix="plmgraph-chromium-"))
    tools = DevTools(binary, profile)
    try:
        yield tools
    finally:
        tools.close()
        shutil.rmtree(profile, ignore_errors=True)


@needs_dot
def test_reports_render_in_headless_chromium(browser: DevTools, tmp_path: Path) -> None:
    shots = Path(os.environ.get("PLMGRAPH_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    pages = {
        "llama3-8b": rp.write_report("llama3-8b", path=tmp_path / "llama3-8b.html", relatives=2),
        "bert-base-zh": rp.write_report("bert-base", path=tmp_path / "bert-base-zh.html", lang="zh", relatives=1),
        "gpt2-vs-llama2-7b": rp.write_report("gpt2", "llama2-7b", path=tmp_path / "gpt2-vs-llama2-7b.html",
                                             relatives=1),
        "run": rp.write_report(_run(tmp_path), path=tmp_path / "run.html", relatives=1),
    }
    for name, path in pages.items():
        problems = browser.open(path)
        assert problems == [], f"{name}: {problems}"
        dom = browser.eval(DOM_PROBE)
        assert dom["diagram"] and dom["diagram"][0] > 300 and dom["diagram"][1] > 300, (name, dom)
        assert dom["diagramNodes"] >= 10, (name, dom)
        for tid in ("t-params", "t-flops", "t-kv", "t-memory"):
            assert dom["tables"][tid] >= 1, (name, tid, dom)
        assert dom["tables"]["t-params"] >= 5
        assert dom["bars"] >= 4 and min(dom["barWidths"]) >= 1, (name, dom)
        assert dom["kinds"] >= 8 and dom["formulas"] >= dom["kinds"] and dom["missing"] == 0, (name, dom)
        assert dom["relatives"] >= 1, (name, dom)
        assert dom["width"] <= 1280, f"{name}: the page scrolls sideways ({dom['width']} px)"
        if name == "run":
            curve = browser.eval("(() => { const b = document.querySelector('#loss svg polyline.train').getBBox();"
                                 " return [b.width, b.height]; })()")
            assert curve[0] > 300 and curve[1] > 100, curve
        if "-vs-" in name:
            assert dom["tables"]["t-changes"] >= 10 and dom["structural"] >= 5 and dom["yamlMarked"] >= 10, dom
        if name.endswith("-zh"):  # the Chinese text is drawn in a CJK font, not as boxes
            chars = _cjk_chars(browser)
            assert len(chars) == 4, chars
            glyphs = browser.eval(GLYPH_PROBE % json.dumps(chars))
            assert glyphs == {"inked": True, "distinct": 4}, (
                f"{name}: Chinese renders as tofu {glyphs}; install a CJK font (tools/install.sh --test: "
                "fonts-wqy-microhei)")
        png = browser.screenshot()
        (shots / f"{name}.png").write_bytes(png)
        seen = _not_blank(png)
        assert seen["width"] == 1280 and seen["colors"] >= 20 and seen["ink"] > 0.03, (name, seen)


def test_the_glyph_check_sees_tofu(browser: DevTools, tmp_path: Path) -> None:
    """A control for the CJK check: characters no font has (plane-16 private use) are all the same box."""
    page = tmp_path / "tofu.html"
    page.write_text("<!DOCTYPE html><html><body><h1>x</h1></body></html>", encoding="utf-8")
    browser.open(page)
    glyphs = browser.eval(GLYPH_PROBE % json.dumps(["\U0010fffd", "\U0010fffc", "\U0010fffb"]))
    assert glyphs["distinct"] == 1, glyphs


def test_the_console_check_sees_errors(browser: DevTools, tmp_path: Path) -> None:
    """The browser test would fail on a page that loads something or logs an error: a control."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                   "content=\"default-src 'none'\"></head><body><img src=\"https://example.invalid/x.png\">"
                   "</body></html>")
    problems = browser.open(bad)
    assert any("Content Security Policy" in p for p in problems), problems
