#!/usr/bin/env bash
# Install plmgraph and everything it needs on a fresh machine (Debian/Ubuntu or any box with pip).
#   bash tools/install.sh          # plmgraph + CPU ONNX Runtime + system Graphviz
#   bash tools/install.sh --test   # ... plus the test tools (pytest, hypothesis, transformers, ruff) and
#                                  # Debian's `chromium`, the headless browser the report tests open pages in
# Environment: PLMGRAPH_TORCH overrides the torch requirement (default: the pinned CPU build
# torch==2.13.0; an unpinned `torch` would pull a multi-GB CUDA build on Linux).
# PLMGRAPH_ORT=gpu installs onnxruntime-gpu instead of onnxruntime (never both: same module).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${PLMGRAPH_ORT:-cpu}"
if [[ "${1:-}" == "--test" ]]; then extras="$extras,test"; fi
# ONNX Runtime GenAI's wheel requires the CPU onnxruntime: only with the cpu flavour (never both wheels)
if [[ "${1:-}" == "--test" && "$extras" == cpu,* ]]; then extras="$extras,genai"; fi

# System Graphviz (`dot`) renders the diagrams; the Python `graphviz` package only drives it.
if ! command -v dot >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    echo "installing system Graphviz with apt-get" >&2
    $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq graphviz >/dev/null
  else
    echo "warning: Graphviz's 'dot' is not installed and apt-get is not available; install it" \
         "(brew install graphviz, dnf install graphviz, conda install graphviz) to render diagrams;" \
         "plmgraph draw will write .dot files until then." >&2
  fi
fi

# The report tests open the HTML pages in a real headless Chromium (tests/exporters/test_report.py).
if [[ "${1:-}" == "--test" ]] && ! command -v chromium >/dev/null 2>&1 \
   && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    echo "installing Chromium with apt-get (for the browser tests of plmgraph report)" >&2
    log="$(mktemp)"  # apt and debconf talk on stderr too: show it only when the install fails
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } \
         >"$log" 2>&1; then
      cat "$log" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
  else
    echo "warning: Chromium is not installed and apt-get is not available; the browser test of" \
         "plmgraph report will be skipped until a 'chromium' is on PATH." >&2
  fi
fi

# A Chinese report (plmgraph report --lang zh) needs a CJK font, or the browser test's screenshots
# show boxes (tofu); WenQuanYi Micro Hei is the light one (5 MB; fonts-noto-cjk is ~300 MB).
if [[ "${1:-}" == "--test" ]] && command -v fc-list >/dev/null 2>&1 && [[ -z "$(fc-list :lang=zh)" ]]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    echo "installing a CJK font (fonts-wqy-microhei) with apt-get (for the Chinese report's browser test)" >&2
    log="$(mktemp)"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
           fonts-wqy-microhei; } >"$log" 2>&1; then
      cat "$log" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
  else
    echo "warning: no CJK font is installed and apt-get is not available; the browser test of a" \
         "Chinese report will fail until one is (fonts-wqy-microhei or fonts-noto-cjk)." >&2
  fi
fi

python -m pip install -q --disable-pip-version-check "${PLMGRAPH_TORCH:-torch==2.13.0}"
python -m pip install -q --disable-pip-version-check -e ".[${extras}]"

# Hugging Face Optimum's ONNX Runtime classes (optimum-onnx) pin transformers < 4.58, which cannot share
# this environment (transformers 5.x). The deploy tests that load export folders in Optimum run it in a
# venv of its own, .venv-optimum, which sees this environment's torch and onnxruntime
# (tests/conftest.py points PLMGRAPH_OPTIMUM_PYTHON at it).
if [[ "${1:-}" == "--test" && "$extras" == cpu,* ]]; then
  if ! .venv-optimum/bin/python -c "import optimum.onnxruntime" >/dev/null 2>&1; then
    echo "installing optimum-onnx into .venv-optimum (for the Optimum deploy tests)" >&2
    python -m venv --system-site-packages .venv-optimum
    .venv-optimum/bin/python -m pip install -q --disable-pip-version-check "optimum-onnx==0.1.0"
  fi
fi
