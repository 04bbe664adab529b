"""deploy/ checked as far as a machine without a container engine allows: every YAML file
parses and validates against its schema (Kubernetes schemas shipped by kubernetes-validate,
the Compose spec vendored by check-jsonschema), the pieces refer to each other correctly,
every spanlake command line in them parses, and the image's entrypoint runs for real with
the image's own HEALTHCHECK command against it."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest

from spanlake.cli.main import cli
from tests.collector.test_recovery import spanlake_command
from tests.net import free_port

yaml = pytest.importorskip("yaml", reason="pip install pyyaml")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30.0"


def spanlake_args_parse(args: list[str]) -> None:
    """Parse a `spanlake ...` command line with the real CLI (without running it)."""
    assert args, "empty command"
    name, rest = args[0], args[1:]
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"spanlake has no command {name!r}"
    command.make_context(name, list(rest), resilient_parsing=False)


def known_env() -> set[str]:
    """Every SPANLAKE_* variable the CLI and config read."""
    dirs = ("cli", "collector", "storage", "server")
    text = "".join(p.read_text() for d in dirs for p in (DEPLOY.parent / d).glob("*.py"))
    return set(re.findall(r"SPANLAKE_[A-Z_]+", text))


def role_of(args: list[str], env: dict[str, str]) -> str:
    """The role a `spanlake up` command line runs (--role, else SPANLAKE_ROLE, else all)."""
    if "--role" in args:
        return args[args.index("--role") + 1]
    return env.get("SPANLAKE_ROLE", "all")


def check_env(names: list[str]) -> None:
    unknown = {n for n in names if n.startswith("SPANLAKE_")} - known_env() - {"SPANLAKE_RETENTION_DAYS"}
    assert not unknown, f"spanlake reads no such variable: {sorted(unknown)}"


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    steps = dockerfile()
    stages = [rest for op, rest in steps if op == "FROM"]
    assert len(stages) >= 2 and all(" AS " in s.upper() for s in stages)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [rest for op, rest in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    for op, rest in steps:
        if op == "COPY" and "--from" not in rest:
            for src in rest.split()[:-1]:
                assert (DEPLOY.parent / src).exists(), f"COPY {src}: not in the repository"
    (health,) = [rest for op, rest in final if op == "HEALTHCHECK"]
    assert "/health" in health and "CMD" in health
    entry = json.loads(next(rest for op, rest in final if op == "ENTRYPOINT"))
    cmd = json.loads(next(rest for op, rest in final if op == "CMD"))
    assert entry == ["spanlake"]
    spanlake_args_parse(cmd)
    env = [part.split("=")[0] for op, rest in final if op == "ENV" for part in rest.split()]
    check_env(env)


def test_the_image_entrypoint_starts_answers_its_health_check_and_stops_cleanly(tmp_path: Path) -> None:
    steps = dockerfile()
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    cmd = json.loads(next(rest for op, rest in final if op == "CMD"))
    health = next(rest for op, rest in final if op == "HEALTHCHECK")
    probe = json.loads(health[health.index("CMD") + 3 :])
    http_port = free_port()
    env = {
        **os.environ,
        "SPANLAKE_DATA_DIR": str(tmp_path / "data"),  # the image's ENV, pointed at a temp folder
        "SPANLAKE_HOST": "127.0.0.1",  # the image listens on 0.0.0.0; a test stays on loopback
        "SPANLAKE_HTTP_PORT": str(http_port),
        "SPANLAKE_GRPC_PORT": str(free_port()),
    }
    help_ = subprocess.run([spanlake_command(), *cmd, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert help_.returncode == 0 and "--lake" in help_.stdout

    proc = subprocess.Popen([spanlake_command(), *cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # the HEALTHCHECK command itself, as Docker would run it
            check = subprocess.run([probe[0].replace("python", sys.executable), *probe[1:]], env=env)
            if check.returncode == 0:
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the collector never became healthy"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # STOPSIGNAL
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert b"everything acknowledged is in the lake" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    bad = subprocess.run([probe[0].replace("python", sys.executable), *probe[1:]], env=env, capture_output=True)
    assert bad.returncode != 0, "the health check fails when the collector is down"


# --- docker compose --------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schemas = pytest.importorskip("check_jsonschema.builtin_schemas", reason="pip install check-jsonschema")
    schema = json.loads((Path(schemas.__file__).parent / "vendor" / "compose-spec.json").read_text())
    doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    jsonschema.validate(doc, schema)

    services = doc["services"]
    assert {"collector", "api", "compactor", "dashboard", "s3"} <= set(services)
    for name in ("collector", "api", "compactor", "dashboard"):
        svc = services[name]
        spanlake_args_parse(svc["command"])
        check_env(list(svc["environment"]))
        assert svc["environment"]["SPANLAKE_LAKE"].startswith("s3://")
        assert svc["environment"]["AWS_ENDPOINT_URL"].startswith("http://s3:")
    assert services["collector"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / services["collector"]["build"]["context"] / "deploy" / "Dockerfile").exists()
    roles = {name: role_of(svc["command"], svc["environment"]) for name, svc in services.items() if "command" in svc
             and svc["command"][0] == "up"}  # fmt: skip
    assert roles == {"collector": "ingest", "api": "api", "compactor": "compactor"}  # the one compactor
    assert services["compactor"]["environment"]["SPANLAKE_COMPACTION"] == "true"
    assert services["dashboard"]["environment"]["SPANLAKE_URL"] == "http://api:4318"


# --- Kubernetes ------------------------------------------------------------------------------


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    docs = k8s_docs()
    for doc in docs:
        kv.validate(doc, K8S_VERSION, strict=True)  # raises on unknown or mistyped fields
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {k for k, _ in kinds} >= {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Secret"}
    kustomize = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomize["resources"]) == sorted(
        p.name for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml"
    )


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(owner, pod template) of each Deployment and CronJob."""
    out = []
    for d in docs:
        if d["kind"] == "Deployment":
            out.append((d, d["spec"]["template"]))
        elif d["kind"] == "CronJob":
            out.append((d, d["spec"]["jobTemplate"]["spec"]["template"]))
    return out


def test_kubernetes_pieces_refer_to_each_other() -> None:
    docs = k8s_docs()
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for svc in (d for d in docs if d["kind"] == "Service"):
        selector = svc["spec"]["selector"]
        targets = [
            dep
            for dep in deployments.values()
            if selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert targets, f"Service {svc['metadata']['name']} selects no Deployment"
        ports = {
            p["name"] for dep in targets for c in dep["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    roles: dict[str, int] = {}
    for _owner, template in pod_specs(docs):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            for ref in c.get("envFrom", []):
                kind, key = ("ConfigMap", "configMapRef") if "configMapRef" in ref else ("Secret", "secretRef")
                assert (kind, ref[key]["name"]) in names
            env = [e["name"] for e in c.get("env", [])]
            check_env(env)
            if c.get("command"):  # a shell running spanlake commands
                for part in c["args"][0].split("&&"):
                    words = shlex.split(part.replace('"$SPANLAKE_RETENTION_DAYS"', "30"))
                    assert words[0] == "spanlake"
                    spanlake_args_parse(words[1:])
            else:
                spanlake_args_parse(c["args"])
            if c["args"][0] == "up":
                role = role_of(c["args"], {e["name"]: e.get("value", "") for e in c.get("env", [])})
                roles[role] = roles.get(role, 0) + _owner["spec"].get("replicas", 1)
                if role != "compactor":
                    assert {"name": "SPANLAKE_COMPACTION", "value": "false"} in c["env"], "only the compactor compacts"
                port_names = {p["name"] for p in c["ports"]}
                for probe in ("readinessProbe", "livenessProbe"):
                    assert c[probe]["httpGet"]["path"] == "/health" and c[probe]["httpGet"]["port"] in port_names
    assert set(roles) == {"ingest", "api", "compactor"} and roles["compactor"] == 1, roles
    compactor = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "spanlake-compactor")
    assert compactor["spec"]["strategy"]["type"] == "Recreate"  # never two at once on purpose
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    check_env(list(config["data"]))


# --- systemd ---------------------------------------------------------------------------------


def test_systemd_unit_runs_spanlake_up_as_a_service_user() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "spanlake.service")
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["User"] not in ("root", "0") and service["KillSignal"] == "SIGTERM"
    exec_start = shlex.split(service["ExecStart"])
    assert exec_start[0].endswith("/spanlake")
    spanlake_args_parse(exec_start[1:])
    assert int(service["TimeoutStopSec"]) >= 60
    assert unit["Install"]["WantedBy"] == "multi-user.target"
