"""deploy/: the Kubernetes manifests and the compose file hold together and ask the server only for
what it understands.

No cluster runs here, so these are the checks a reviewer would make by hand: every flag given to
``hashmatch serve`` is parsed by the server's own argument parser (after the same ``$(VAR)``
expansion the kubelet does), every port a probe or Service names is declared, every Secret and
ConfigMap key referenced exists, the grace periods nest, and the probes ask the health port the
server is told to open.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML (the [dev] extra) reads the manifests")

from throwaway_ca import CA  # noqa: E402

from hashmatch.server.__main__ import parse_args  # noqa: E402

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KUBERNETES = DEPLOY / "kubernetes"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for doc in documents(KUBERNETES / name):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def expand(arg: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion in args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], arg)


def container_env(container: dict, manifests: dict) -> dict[str, str]:
    env = {}
    for item in container.get("env", []):
        source = item.get("valueFrom", {})
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = manifests[("ConfigMap", ref["name"])]["data"][ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = manifests[("Secret", ref["name"])]
            assert ref["key"] in secret.get("stringData", {}) | secret.get("data", {}), ref
            env[item["name"]] = f"<secret {ref['name']}/{ref['key']}>"
        else:
            env[item["name"]] = item["value"]
    return env


def flag(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times"
    return values[0]


def test_the_deployment_asks_the_server_only_for_what_it_understands(manifests, tmp_path: Path) -> None:
    deployment = manifests[("Deployment", "hashmatch")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = container_env(container, manifests)
    args = [expand(a, env) for a in container["args"]]
    # The server reads the TLS files while parsing: give it real ones where the Secret is mounted.
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["tls"]
    ca = CA("deploy")
    ca.issue("hashmatch", dns=("hashmatch",), server=True).write(tmp_path, "tls")
    ca.write(tmp_path, "ca")
    parsed = parse_args([a.replace(mounted, str(tmp_path)) for a in args])  # exits on anything unknown
    assert parsed.workers == int(env["HASHMATCH_WORKERS"]) >= 1
    assert parsed.grace == float(env["HASHMATCH_GRACE"])
    # The store's URL comes from the Secret through the environment, never the command line.
    assert "HASHMATCH_STORE_URL" in env and not any("postgresql://" in a for a in args)

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == int(flag(args, "listen").rsplit(":", 1)[1])
    assert ports["metrics"] == int(flag(args, "metrics").rsplit(":", 1)[1])
    health_port = int(flag(args, "health-listen").rsplit(":", 1)[1])
    assert ports["health"] == health_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == health_port, probe
    # Readiness asks the overall service (loaded, self-test passed, not draining); liveness only
    # that the process answers, or a pod loading a big index would be killed and start over.
    assert container["readinessProbe"]["grpc"].get("service", "") == ""
    assert container["livenessProbe"]["grpc"]["service"] == "liveness"

    # The pod outlives its drain: preStop pause + --grace < terminationGracePeriodSeconds.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    pause = float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", " ".join(pre_stop)).group(1))
    assert pause + parsed.grace < pod["terminationGracePeriodSeconds"]

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) <= set(volumes)
    assert str(parsed.data_dir) == mounts["data"]
    for name in ("tls-cert", "tls-key", "tls-client-ca"):
        assert flag(args, name).startswith(mounts["tls"] + "/")
    tls_secret = manifests[("Secret", volumes["tls"]["secret"]["secretName"])]
    for name in ("tls-cert", "tls-key", "tls-client-ca"):
        assert Path(flag(args, name)).name in tls_secret["stringData"]

    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001


def test_services_and_the_autoscaler_point_at_the_deployment(manifests) -> None:
    deployment = manifests[("Deployment", "hashmatch")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    for name in ("hashmatch", "hashmatch-headless"):
        service = manifests[("Service", name)]
        assert service["spec"]["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    assert manifests[("Service", "hashmatch-headless")]["spec"]["clusterIP"] == "None"
    hpa = manifests[("HorizontalPodAutoscaler", "hashmatch")]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hashmatch"}
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = manifests[("PodDisruptionBudget", "hashmatch")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_compose_runs_two_replicas_on_one_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    replicas = {name: s for name, s in services.items() if name.startswith("replica-")}
    assert len(replicas) == 2 and "postgres" in services
    host_ports = set()
    for name, service in replicas.items():
        url = service["environment"]["HASHMATCH_STORE_URL"]
        assert "@postgres:5432/" in url
        # The server takes its store from that variable when no --store is given.
        monkeypatch.setenv("HASHMATCH_STORE_URL", url)
        parsed = parse_args(service["command"])
        assert parsed.workers >= 1 and parsed.store == url
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        host_ports |= {p.rsplit(":", 1)[0] for p in service["ports"]}
        assert all(p.startswith("127.0.0.1:") for p in service["ports"]), "published on loopback only"
    assert len(host_ports) == 4, "each replica's gRPC and metrics ports are published once"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
