"""The Dockerfile holds together. No Docker engine runs here, so these are the checks a reviewer
would make by hand, plus running the image's HEALTHCHECK command against a real server:

- multi-stage, the compiler only in the builder, a non-root user in the image that runs;
- ``ENTRYPOINT`` + ``CMD`` parse with the server's own argument parser, the data folder is the
  volume, and the ports it listens on are the ones exposed;
- the HEALTHCHECK asks ``grpc.health.v1.Health`` and says healthy (exit 0) only when it answers
  SERVING: checked against a real server, its separate plaintext health port, and a closed port;
- ``.dockerignore`` keeps what the builder needs (the package folders, pyproject.toml, README.md).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hashmatch.server.__main__ import parse_args

ROOT = Path(__file__).resolve().parent.parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for name, args in instructions():
        if name == "FROM":
            found.append([])
        if found:
            found[-1].append((name, args))
    return found


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def one(stage: list[tuple[str, str]], name: str) -> str:
    values = [args for n, args in stage if n == name]
    assert len(values) == 1, f"{name} appears {len(values)} times in the final stage"
    return values[0]


def test_multi_stage_slim_and_non_root() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2, "the Dockerfile must be multi-stage"
    builder, runtime = all_stages[0], all_stages[-1]
    assert any("build-essential" in args for name, args in builder if name == "RUN")
    # The image that runs has no compiler and no pip cache, and its base is a slim one.
    assert not any("build-essential" in args or "gcc" in args for name, args in runtime if name == "RUN")
    assert "PIP_NO_CACHE_DIR=1" in " ".join(args for name, args in runtime if name == "ENV")
    assert "slim" in " ".join(args for name, args in instructions() if name == "ARG")
    user = one(runtime, "USER").split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) > 0)


def served_args(runtime: list[tuple[str, str]]) -> list[str]:
    entrypoint = exec_form(one(runtime, "ENTRYPOINT"))
    assert entrypoint[:2] == ["hashmatch", "serve"], entrypoint
    return entrypoint[2:] + exec_form(one(runtime, "CMD"))


def test_the_command_parses_and_uses_the_volume_and_the_exposed_ports() -> None:
    runtime = stages()[-1]
    parsed = parse_args(served_args(runtime))  # exits on an unknown flag
    volumes = exec_form(one(runtime, "VOLUME")) if one(runtime, "VOLUME").startswith("[") else one(runtime, "VOLUME").split()
    assert str(parsed.data_dir) in volumes
    assert one(runtime, "WORKDIR") == str(parsed.data_dir)
    exposed = {int(p.split("/")[0]) for p in one(runtime, "EXPOSE").split()}
    assert int(parsed.listen.rsplit(":", 1)[1]) in exposed
    assert int(parsed.metrics.rsplit(":", 1)[1]) in exposed
    # Listening on every interface of the container, or a published port reaches nothing.
    assert parsed.listen.rsplit(":", 1)[0] in ("0.0.0.0", "[::]")


def healthcheck_command() -> list[str]:
    args = one(stages()[-1], "HEALTHCHECK")
    match = re.search(r"\bCMD\s+(\[.*\])\s*$", args)
    assert match, f"HEALTHCHECK has no exec-form CMD: {args}"
    command = exec_form(match.group(1))
    assert command[0] == "python" and "grpc_health.v1" in command[-1] and "SERVING" in command[-1]
    return [sys.executable, *command[1:]]


def run_healthcheck(address: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HASHMATCH_HEALTH_ADDR": address}
    return subprocess.run(healthcheck_command(), env=env, capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthcheck_asks_the_grpc_health_service(server_factory: Any) -> None:
    default = [args for name, args in stages()[-1] if name == "ENV" and "HASHMATCH_HEALTH_ADDR" in args]
    assert default and "127.0.0.1:50051" in default[0]  # the port the CMD listens on
    srv = server_factory()
    ok = run_healthcheck(srv.address)
    assert ok.returncode == 0, ok.stderr
    # Under TLS the API port is not plaintext: the health-only port (--health-listen) is.
    health_port = free_port()
    separate = server_factory(health_address=f"127.0.0.1:{health_port}")
    assert run_healthcheck(f"127.0.0.1:{health_port}").returncode == 0
    assert separate.port != health_port
    # Nothing listening: unhealthy.
    assert run_healthcheck(f"127.0.0.1:{free_port()}").returncode != 0


def test_dockerignore_keeps_what_the_build_needs() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {folder.split("/")[0] for folder in pyproject["tool"]["setuptools"]["package-dir"].values()}
    for ext in pyproject["tool"]["setuptools"].get("ext-modules", []):
        needed |= {source.split("/")[0] for source in ext["sources"]}
    for pattern in ignored:
        for name in needed:
            assert not re.fullmatch(pattern.replace(".", r"\.").replace("*", ".*"), name), (
                f".dockerignore pattern {pattern!r} drops {name}, which the builder needs"
            )
    # The README's `docker run` publishes the ports the image exposes.
    readme = (ROOT / "README.md").read_text()
    run_line = next(line for line in readme.splitlines() if line.startswith("docker run"))
    published = {int(p.split(":")[1]) for p in re.findall(r"-p (\d+:\d+)", run_line)}
    exposed = {int(p) for p in one(stages()[-1], "EXPOSE").split()}
    assert published <= exposed, shlex.join(run_line.split())
