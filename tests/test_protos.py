"""The hashmatch.v1 contract: committed stubs are fresh, buf lint passes, services and enum unchanged."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_DIR = PROTO_ROOT / "hashmatch" / "v1"
STUB_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
LOCAL_BUF = ROOT / ".tools" / "buf" / "node_modules" / ".bin" / "buf"

REGENERATE = "run `make protos` (python scripts/gen_protos.py) and commit the result"


def _stub_proto_stem(name: str) -> str | None:
    """'lists_pb2_grpc.py' -> 'lists'; None for a file that is not a generated stub."""
    for suffix in STUB_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _committed_stubs() -> dict[str, Path]:
    return {p.name: p for p in PROTO_DIR.iterdir() if p.is_file() and _stub_proto_stem(p.name)}


def _load_gen_protos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_hashmatch_gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- stubs ------------------------------------------------------------------------------


def test_every_proto_has_committed_stubs():
    protos = sorted(PROTO_DIR.glob("*.proto"))
    assert protos, f"no .proto files under {PROTO_DIR}"
    committed = _committed_stubs()
    missing = [
        f"{p.stem}{suffix}" for p in protos for suffix in STUB_SUFFIXES if f"{p.stem}{suffix}" not in committed
    ]
    assert not missing, f"protos without committed stubs: {', '.join(missing)}; {REGENERATE}"


def test_every_committed_stub_has_a_proto():
    orphans = sorted(
        name for name in _committed_stubs() if not (PROTO_DIR / f"{_stub_proto_stem(name)}.proto").exists()
    )
    assert not orphans, (
        f"committed stubs whose .proto is gone: {', '.join(orphans)}; delete them (git rm) and {REGENERATE}"
    )


def test_committed_stubs_are_what_gen_protos_writes(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools is not installed: pip install -e '.[dev]'")
    generated = {p.name: p for p in _load_gen_protos().generate(tmp_path)}
    assert generated, "scripts/gen_protos.py generated nothing"
    committed = _committed_stubs()

    problems: list[str] = []
    for name in sorted(generated.keys() - committed.keys()):
        problems.append(f"{name}: generated but not committed")
    for name in sorted(committed.keys() - generated.keys()):
        problems.append(f"{name}: committed but not generated from any proto")
    for name in sorted(generated.keys() & committed.keys()):
        new, old = generated[name].read_bytes(), committed[name].read_bytes()
        if new != old:
            diff = difflib.unified_diff(
                old.decode(errors="replace").splitlines(),
                new.decode(errors="replace").splitlines(),
                f"committed/{name}",
                f"generated/{name}",
                lineterm="",
                n=1,
            )
            lines = [line if len(line) <= 160 else line[:160] + " ..." for line in diff]
            excerpt = "\n".join(lines[:24] + (["..."] if len(lines) > 24 else []))
            problems.append(f"{name}: differs from a fresh generation\n{excerpt}")
    if problems:
        pytest.fail(
            f"stale stubs in {PROTO_DIR.relative_to(ROOT)}: {REGENERATE}\n\n" + "\n\n".join(problems), pytrace=False
        )


# ---- buf lint ---------------------------------------------------------------------------


def _find_buf() -> str | None:
    if LOCAL_BUF.is_file() and os.access(LOCAL_BUF, os.X_OK):
        return str(LOCAL_BUF)
    return shutil.which("buf")


def test_buf_lint_passes():
    buf = _find_buf()
    if buf is None:
        pytest.skip(
            f"buf not found at {LOCAL_BUF.relative_to(ROOT)} nor on PATH; "
            "`make test` installs it with npm (@bufbuild/buf) when npm is present, or run `make buf`"
        )
    result = subprocess.run(
        [buf, "lint"], cwd=PROTO_ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        pytest.fail(f"`{buf} lint` in protos/ exited {result.returncode}:\n{output}", pytrace=False)


# ---- the contract -----------------------------------------------------------------------

MATCHER_METHODS = {
    # name: (client streaming, server streaming)
    "HashImage": (False, False),
    "MatchImage": (False, False),
    "MatchHashes": (False, False),
    "MatchImageStream": (True, True),
}
LISTS_METHODS = {
    "CreateList": (False, False),
    "GetList": (False, False),
    "ListLists": (False, False),
    "UpdateList": (False, False),
    "DeleteList": (False, False),
    "UploadHashes": (True, False),
    "RemoveHashes": (False, False),
    "ExportHashes": (False, True),
    "AddImages": (True, False),
}
KEYS_METHODS = {
    "CreateKey": (False, False),
    "ListKeys": (False, False),
    "RevokeKey": (False, False),
}
ADMIN_METHODS = {
    "GetSettings": (False, False),
}
ALGORITHMS = {
    "ALGORITHM_UNSPECIFIED": 0,
    "ALGORITHM_PDQ": 1,
    "ALGORITHM_PHASH": 2,
    "ALGORITHM_DHASH": 3,
    "ALGORITHM_AHASH": 4,
    "ALGORITHM_WHASH": 5,
    "ALGORITHM_MD5": 6,
    "ALGORITHM_SHA256": 7,
    "ALGORITHM_SHA1": 8,
}


@pytest.mark.parametrize(
    ("module_name", "service", "methods"),
    [
        ("matcher", "MatcherService", MATCHER_METHODS),
        ("lists", "ListsService", LISTS_METHODS),
        ("keys", "KeysService", KEYS_METHODS),
        ("admin", "AdminService", ADMIN_METHODS),
    ],
)
def test_services_are_the_contract(module_name, service, methods):
    pb2 = importlib.import_module(f"hashmatch.v1.{module_name}_pb2")
    grpc_mod = importlib.import_module(f"hashmatch.v1.{module_name}_pb2_grpc")

    assert list(pb2.DESCRIPTOR.services_by_name) == [service]
    svc = pb2.DESCRIPTOR.services_by_name[service]
    assert svc.full_name == f"hashmatch.v1.{service}"
    found = {m.name: (m.client_streaming, m.server_streaming) for m in svc.methods}
    assert found == methods, f"{svc.full_name} changed: {found}"
    for m in svc.methods:
        assert m.input_type.full_name == f"hashmatch.v1.{m.name}Request"
        assert m.output_type.full_name == f"hashmatch.v1.{m.name}Response"

    # The generated names the server and the client code against.
    for attr in (f"{service}Stub", f"{service}Servicer", f"add_{service}Servicer_to_server"):
        assert hasattr(grpc_mod, attr), f"hashmatch.v1.{module_name}_pb2_grpc has no {attr}"


def test_algorithm_enum_is_the_contract():
    from hashmatch.v1 import hashes_pb2

    enum = hashes_pb2.DESCRIPTOR.enum_types_by_name["Algorithm"]
    assert enum.full_name == "hashmatch.v1.Algorithm"
    assert {v.name: v.number for v in enum.values} == ALGORITHMS


def test_algorithm_enum_matches_the_hashing_table():
    """Every algorithm in hashing.algorithms has an ALGORITHM_<NAME> on the wire, and no more."""
    from hashmatch.hashing.algorithms import Algorithm

    wire = {name.removeprefix("ALGORITHM_") for name in ALGORITHMS} - {"UNSPECIFIED"}
    assert {a.name for a in Algorithm} == wire

