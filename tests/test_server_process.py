"""The server as operators run it: a process that announces its port, persists, and drains on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hashmatch.v1 import lists_pb2, lists_pb2_grpc


def start(data_dir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hashmatch.server", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
         "--metrics", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        found = re.search(r"hashmatch listening on (\S+)", line)
        if found:
            return proc, found.group(1)
    raise AssertionError(f"server exited with {proc.wait()} before announcing its port")


def admin_key(data_dir: Path) -> tuple[tuple[str, str]]:
    """The key the first start wrote (auth is on by default), as call metadata."""
    return (("authorization", "Bearer " + (data_dir / "admin.key").read_text().strip()),)


def test_process_persists_lists_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, address = start(data)
    try:
        with grpc.insecure_channel(address) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            lists_pb2_grpc.ListsServiceStub(channel).CreateList(
                lists_pb2.CreateListRequest(name="kept"), timeout=10, metadata=admin_key(data)
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert (data / "hashmatch.sqlite3").is_file()

    proc, address = start(data)
    try:
        with grpc.insecure_channel(address) as channel:
            names = [l.name for l in lists_pb2_grpc.ListsServiceStub(channel).ListLists(
                lists_pb2.ListListsRequest(), timeout=10, metadata=admin_key(data)).lists]
            assert names == ["kept"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
