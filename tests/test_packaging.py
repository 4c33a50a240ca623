"""The package list in pyproject.toml covers every Python package folder, and the zoo ships."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    dirs = {v: k for k, v in conf["package-dir"].items()}
    found = set()
    for init in ROOT.glob("plmgraph/**/__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    for folder in ("specs", "exporters"):
        for init in (ROOT / folder).glob("**/__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((dirs[folder], *rel)))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}; stale: {sorted(listed - found)}"


def test_zoo_is_package_data():
    from plmgraph.spec import zoo_dir

    assert (zoo_dir() / "gpt2.yaml").is_file()
