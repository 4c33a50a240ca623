import sys

import pytest
from plmgraph.exporters import runtime

from plmgraph.errors import PlmgraphError


def test_onnxruntime_is_found_with_a_cpu_provider():
    assert "CPUExecutionProvider" in runtime.providers()


def test_missing_onnxruntime_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(PlmgraphError, match=r"plmgraph\[cpu\].*plmgraph\[gpu\].*not be installed together"):
        runtime.import_onnxruntime()
