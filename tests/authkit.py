"""Helpers for the security tests: servers with auth on, keys made through the real KeysService,
server processes whose output the tests read."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hashmatch.client import Client

MatchStub = Any


def admin_key(data_dir: Path) -> str:
    """The key the first start wrote to the data folder."""
    return (data_dir / "admin.key").read_text().strip()


def bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def new_key(address: str, data_dir: Path, name: str, roles: Sequence[str], **kwargs: Any) -> str:
    """A fresh key with ``roles``, created by the admin key over gRPC; returns the whole key."""
    with Client(address, api_key=admin_key(data_dir), timeout=10) as admin:
        return admin.create_key(name, roles, **kwargs).secret


def secure_server(server_factory: Callable[..., Any], **overrides: Any) -> Any:
    return server_factory(auth=True, **overrides)


def rpc_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    try:
        result = call(*args, **kwargs)
        if hasattr(result, "__next__"):  # a server stream: the error comes when it is read
            list(result)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"{call} succeeded; expected an error")


def trailing(error: grpc.RpcError) -> dict[str, str]:
    return {k: v for k, v in (error.trailing_metadata() or ())}


class ServerProcess:
    """``python -m hashmatch.server`` on a free loopback port; stderr collected for the tests."""

    def __init__(self, data_dir: Path, *flags: str, env: dict[str, str] | None = None,
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self.data_dir = data_dir
        self.credentials = credentials
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hashmatch.server", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--metrics", "off", "--log-format", "text", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self._stderr: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.stdout_lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line)
            found = re.search(r"hashmatch listening on (\S+:\d+)", line)
            if found:
                self.address = found.group(1)
                break
        else:
            self.proc.wait(timeout=30)
            raise AssertionError(f"server exited with {self.proc.returncode}: {self.stderr}")
        self.wait_serving()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Health turns SERVING once the start-up self-test passed."""
        end = time.monotonic() + timeout
        channel = (grpc.secure_channel(self.address, self.credentials) if self.credentials
                   else grpc.insecure_channel(self.address))
        with channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < end:
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise AssertionError("server never became SERVING")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.stdout_lines.extend(self.proc.stdout.readlines())
        return self.proc.returncode
