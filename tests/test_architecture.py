"""The product's shape, enforced: data flows one way and the thin client stays thin."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder -> modules it must never import (prefix match)
FORBIDDEN = {
    "hashing": ("grpc", "hashmatch.server", "hashmatch.index", "hashmatch.client", "hashmatch.v1", "faiss"),
    "index": ("grpc", "hashmatch.server", "hashmatch.client", "hashmatch.v1"),
    "client": ("hashmatch.server", "hashmatch.index", "faiss", "PIL", "numpy", "imagehash", "pdqhash"),
}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layers_import_only_downwards(folder: str) -> None:
    files = sorted((ROOT / folder).glob("*.py"))
    assert files, f"{folder}/ has no modules"
    offences = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in imports_of(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[folder])
    ]
    assert offences == []


def test_client_imports_without_server_side_packages() -> None:
    """Importing the SDK and the CLI must work where only grpcio and protobuf are installed."""
    blocked = ["faiss", "PIL", "numpy", "imagehash", "pdqhash", "hashmatch.server", "hashmatch.index"]
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in {blocked!r}):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import hashmatch.client, hashmatch.client.cli
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_base_install_pulls_no_server_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for heavy in ("faiss", "pillow", "numpy", "imagehash", "pdqhash"):
        assert heavy not in base
    assert any("faiss" in d for d in project["optional-dependencies"]["server"])
