"""The README's short tour, run as written: its shell block, in bash, against a real server with
API keys on (as `make serve` starts it), from a folder laid out like a clone (``data/`` holding the
server's admin.key, ``../shared`` beside it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def tour_block() -> str:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("\n## A short tour\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", tour, re.S)
    assert match, "no sh block under '## A short tour'"
    return match.group(1)


def test_the_readme_tour_runs_as_written(server_factory: Any, shared_dir: Path, tmp_path: Path) -> None:
    srv = server_factory(auth=True)
    assert (srv.data_dir / "admin.key").is_file()
    clone = tmp_path / "hashmatch"
    clone.mkdir()
    (clone / "data").symlink_to(srv.data_dir)
    (tmp_path / "shared").symlink_to(shared_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHMATCH_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # . .venv/bin/activate
    env["HASHMATCH_SERVER"] = srv.address  # the tour's server is 127.0.0.1:50051; this one's port is free
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", tour_block()],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"the tour stopped (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    out = done.stdout
    # The listed picture is found, at the list's threshold, before the list is disabled.
    assert re.search(r"photo\.jpg\s+ncii-demo\s+bridge-1\s+demo\s+pdq\s+0\s+25\b", out), out
    assert '"entry_id": "bridge-1"' in out
    assert "removed 1 entry from ncii-demo" in out
    assert (clone / "backup.csv").read_text().startswith("hash,algorithm,label,id")
