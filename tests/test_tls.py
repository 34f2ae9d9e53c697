"""TLS and mutual TLS with throwaway CAs: a plaintext client, a client that does not trust the server,
a client with an untrusted certificate and one with no certificate under mTLS are all refused; a
verified certificate can carry roles of its own."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from authkit import ServerProcess, admin_key, bearer, secure_server
from imagegen import encode, photo
from throwaway_ca import CA

from hashmatch.client import Client, PermissionDenied, Unauthenticated, Unavailable
from hashmatch.server.tls import TlsConfig
from hashmatch.v1 import lists_pb2, lists_pb2_grpc

@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path  # CN pipeline-1, SAN pipeline.example.com
    client_key: Path
    other_cert: Path  # signed by the client CA, CN and SAN not mapped to roles
    other_key: Path
    rogue_cert: Path  # same names as client_cert, from a CA the server does not trust
    rogue_key: Path
    rogue_ca: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    server_ca, client_ca, rogue_ca = CA("server"), CA("clients"), CA("rogue")
    server_cert, server_key = server_ca.issue("localhost", dns=("localhost",), ips=("127.0.0.1",),
                                              server=True).write(folder, "server")
    client_cert, client_key = client_ca.issue("pipeline-1", dns=("pipeline.example.com",)).write(folder, "client")
    other_cert, other_key = client_ca.issue("someone-else").write(folder, "other")
    rogue_cert, rogue_key = rogue_ca.issue("pipeline-1", dns=("pipeline.example.com",)).write(folder, "rogue")
    return Pki(server_ca.write(folder, "server-ca"), server_cert, server_key, client_ca.write(folder, "client-ca"),
               client_cert, client_key, other_cert, other_key, rogue_cert, rogue_key, rogue_ca.write(folder, "rogue-ca"))


def list_lists(address: str, key: str | None, **tls: Any) -> Any:
    with Client(address, api_key=key, timeout=5, **tls) as c:
        return c.list_lists()


def test_tls_server_refuses_plaintext_and_untrusting_clients(server_factory: Any, pki: Pki) -> None:
    srv = secure_server(server_factory, tls=TlsConfig(pki.server_cert, pki.server_key))
    key = admin_key(srv.data_dir)
    assert list_lists(srv.address, key, tls_ca=pki.ca) == ()
    with pytest.raises(Unavailable):
        list_lists(srv.address, key)  # plaintext
    with grpc.insecure_channel(srv.address) as channel, pytest.raises(grpc.RpcError) as plain:
        lists_pb2_grpc.ListsServiceStub(channel).ListLists(lists_pb2.ListListsRequest(), metadata=bearer(key),
                                                           timeout=5)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(Unavailable):
        list_lists(srv.address, key, tls_ca=pki.rogue_ca)  # a server it cannot verify
    with pytest.raises(Unauthenticated):
        list_lists(srv.address, None, tls_ca=pki.ca)  # TLS is no substitute for a key


def test_mutual_tls_refuses_missing_and_untrusted_client_certificates(server_factory: Any, pki: Pki) -> None:
    srv = secure_server(server_factory, tls=TlsConfig(pki.server_cert, pki.server_key, pki.client_ca))
    key = admin_key(srv.data_dir)
    good = dict(tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.client_key)
    assert list_lists(srv.address, key, **good) == ()
    with pytest.raises(Unavailable):
        list_lists(srv.address, key, tls_ca=pki.ca)  # no client certificate
    with pytest.raises(Unavailable):
        list_lists(srv.address, key, tls_ca=pki.ca, tls_cert=pki.rogue_cert, tls_key=pki.rogue_key)
    with pytest.raises(Unavailable):
        list_lists(srv.address, key)  # plaintext
    with pytest.raises(Unauthenticated):
        list_lists(srv.address, None, **good)  # a certificate without roles needs a key too


def test_client_certificates_can_carry_roles(server_factory: Any, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    srv = secure_server(server_factory, tls=TlsConfig(
        pki.server_cert, pki.server_key, pki.client_ca, {"pipeline.example.com": frozenset({"match"}),
                                                        "curator-cn": frozenset({"curate"})}))
    cert = dict(tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.client_key)
    image = encode(photo(11, (160, 120)), "PNG")
    with Client(srv.address, timeout=10, api_key=None, **cert) as c:
        assert c.match_image(image).matches == ()
        with pytest.raises(PermissionDenied, match="certificate pipeline.example.com"):
            c.list_lists()
    with Client(srv.address, timeout=10, api_key=None, tls_ca=pki.ca, tls_cert=pki.other_cert,
                tls_key=pki.other_key) as c, pytest.raises(Unauthenticated):
        c.match_image(image)
    # A key, when sent, decides: the admin key over the same certificate may curate.
    with Client(srv.address, timeout=10, api_key=admin_key(srv.data_dir), **cert) as c, \
            caplog.at_level(logging.INFO, logger="hashmatch.audit"):
        c.create_list("by-key")
    assert "CreateList by admin (key" in caplog.text


def test_tls_flags_for_the_server_and_the_cli(tmp_path: Path, pki: Pki) -> None:
    data = tmp_path / "data"
    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes(), pki.client_key.read_bytes(),
                                               pki.client_cert.read_bytes())
    proc = ServerProcess(data, "--listen", "127.0.0.1:0", "--tls-cert", str(pki.server_cert), "--tls-key",
                         str(pki.server_key), "--tls-client-ca", str(pki.client_ca), "--tls-require-client-cert",
                         "--tls-client-role", "pipeline.example.com=match", credentials=credentials)
    image = tmp_path / "upload.png"
    image.write_bytes(encode(photo(12, (160, 120)), "PNG"))
    try:
        tls = ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key)]
        env = {k: v for k, v in os.environ.items() if k != "HASHMATCH_API_KEY"}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "hashmatch.client.cli", "--server", proc.address, *args],
                                  capture_output=True, text=True, timeout=60, env=env)

        matched = cli(*tls, "--json", "match", str(image))  # the certificate's role, no key
        assert matched.returncode == 0, matched.stderr
        assert json.loads(matched.stdout)[0]["matches"] == []
        listed = cli(*tls, "--api-key-file", str(data / "admin.key"), "lists", "ls")
        assert listed.returncode == 0 and "no lists" in listed.stdout, listed.stderr
        no_cert = cli("--tls-ca", str(pki.ca), "--api-key-file", str(data / "admin.key"), "--timeout", "5",
                      "lists", "ls")
        assert no_cert.returncode == 1 and "UNAVAILABLE" in no_cert.stderr
    finally:
        assert proc.stop() == 0
    bad = subprocess.run([sys.executable, "-m", "hashmatch.server", "--tls-cert", str(pki.server_cert),
                          "--tls-key", str(pki.server_key), "--tls-client-role", "x=match"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--tls-client-ca" in bad.stderr
