"""Deployment manifests (issue 9): every file parses, says what it must, and starts the command
these tests run.

- The one daemon command: the Dockerfile's ENTRYPOINT + CMD, the systemd ExecStart, the compose
  `daemon` service and the Kubernetes Deployment all start `claresia-sync run` with the same
  options, and `test_the_deployed_commands_run` runs exactly that argv (ops port changed) against a
  fresh PostgreSQL after the one-shot `db upgrade`, then checks /healthz, /readyz, /metrics and
  SIGTERM.
- Every subcommand a manifest runs is a real one (`python -m claresia_sync <sub> --help` exits 0).
- External checkers where they exist: `kubectl kustomize` (client-side, no cluster),
  `systemd-analyze verify`, `docker compose config`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from claresia_sync.tenancy.schema import check_consistency, load_tenants, parse_tenants

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
UNIT = DEPLOY / "systemd" / "claresia-sync.service"
OPS_PORT = 9464
CATALOG = {p.stem for p in (ROOT / "skills_ir" / "catalog").glob("*.json")}


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


SCRIPT = next(iter(_pyproject()["project"]["scripts"]))
VERSION = _pyproject()["project"]["version"]


def _documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert docs, f"{path}: no YAML document"
    for d in docs:
        assert isinstance(d, dict), f"{path}: a document is not a mapping"
    return docs


def _k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(K8S.glob("*.yaml")) for d in _documents(p)]


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _k8s_objects() if d["kind"] == kind]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


@cache
def _subcommand_exists(words: tuple[str, ...]) -> bool:
    """`python -m claresia_sync <words> --help` exits 0 (typer exits 2 on an unknown command)."""
    proc = subprocess.run(
        [sys.executable, "-m", "claresia_sync", *words, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    return proc.returncode == 0


def _subcommand(args: list[str]) -> tuple[str, ...]:
    """The leading words of an argv that name the subcommand (`db upgrade`, `run`, ...)."""
    words: list[str] = []
    for arg in args:
        if arg.startswith("-") or "/" in arg:
            break
        words.append(arg)
    return tuple(words)


def _assert_cli(argv: list[str], where: str) -> None:
    """argv runs the console script (bare or by path) with a real subcommand."""
    assert argv, f"{where}: empty command"
    assert Path(argv[0]).name == SCRIPT, f"{where}: runs {argv[0]!r}, not the {SCRIPT} script"
    words = _subcommand(argv[1:])
    assert words, f"{where}: no subcommand in {argv}"
    assert _subcommand_exists(words), f"{where}: `{SCRIPT} {' '.join(words)}` is not a command"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _exec_form(instruction: str) -> list[str]:
    values = [v for w, v in _dockerfile_instructions() if w == instruction]
    assert values, f"Dockerfile: no {instruction}"
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), f"Dockerfile: {instruction} is not in exec (JSON) form"
    return [str(v) for v in parsed]


def _docker_command() -> list[str]:
    return _exec_form("ENTRYPOINT") + _exec_form("CMD")


def _unit() -> dict[str, list[str]]:
    section = ""
    keys: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        keys.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return keys


def _daemon_container() -> dict[str, Any]:
    (deployment,) = _by_kind("Deployment")
    (container,) = _pod_spec(deployment)["containers"]
    return container


def _k8s_command(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", _exec_form("ENTRYPOINT")), *container.get("args", [])]


def _compose() -> dict[str, Any]:
    (doc,) = _documents(COMPOSE)
    return doc


def _compose_command(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint", _exec_form("ENTRYPOINT"))
    return [*entrypoint, *service["command"]]


# --- the one daemon command ------------------------------------------------------------------


def test_the_dockerfile_systemd_compose_and_k8s_start_the_same_daemon_command() -> None:
    docker = _docker_command()
    (exec_start,) = _unit()["Service.ExecStart"]
    systemd = shlex.split(exec_start)
    k8s = _k8s_command(_daemon_container())
    compose = _compose_command(_compose()["services"]["daemon"])
    for where, argv in [("Dockerfile", docker), ("systemd", systemd), ("k8s", k8s)]:
        _assert_cli(argv, where)
        assert argv[1] == "run", f"{where}: the daemon is `{SCRIPT} run`, got {argv}"
    _assert_cli(compose, "compose daemon")
    # The same options everywhere (compose and k8s may add tuning flags after them).
    assert systemd[1:] == docker[1:], (systemd, docker)
    assert k8s[1 : len(docker)] == docker[1:], (k8s, docker)
    assert compose[1 : len(docker)] == docker[1:], (compose, docker)
    assert docker[docker.index("--ops-port") + 1] == str(OPS_PORT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def fresh_database_url(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture
def deployed_env(fresh_database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """As in the image: the database URL set, a state dir and HOME the process cannot write (the
    k8s root filesystem is read-only), a writable TMPDIR only."""
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARESIA_")}
    env |= {
        "CLARESIA_DATABASE_URL": fresh_database_url,
        "CLARESIA_STATE_DIR": str(readonly),
        "HOME": str(readonly),
        "TMPDIR": str(tmp_path / "tmp"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    readonly.chmod(0o555)
    try:
        yield env
    finally:
        readonly.chmod(0o755)


def _script_path() -> str:
    path = Path(sys.executable).parent / SCRIPT
    return str(path) if path.exists() else shutil.which(SCRIPT) or SCRIPT


def test_the_deployed_commands_run(deployed_env: dict[str, str]) -> None:
    """Migration one-shot (as compose, the Job and ExecStartPre run it), then the daemon argv of
    the Dockerfile: it serves /healthz, /readyz, /metrics and exits 0 on SIGTERM within 10 s."""
    (pre,) = _unit()["Service.ExecStartPre"]
    migrate = shlex.split(pre)
    assert migrate[1:] == _compose()["services"]["migrate"]["command"]
    (job,) = [j for j in _by_kind("Job") if j["metadata"]["name"].endswith("migrate")]
    assert _k8s_command(_pod_spec(job)["containers"][0])[1:] == migrate[1:]
    script = _script_path()
    proc = subprocess.run(
        [script, *migrate[1:]], env=deployed_env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    argv = _docker_command()
    port = _free_port()
    argv[argv.index("--ops-port") + 1] = str(port)
    argv[argv.index("--ops-host") + 1] = "127.0.0.1"
    daemon = subprocess.Popen(
        [script, *argv[1:]],
        env=deployed_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        ready: tuple[int, str] = (0, "")
        while time.monotonic() < deadline:
            assert daemon.poll() is None, f"daemon exited early: {daemon.stderr.read()[-2000:]}"
            try:
                ready = _get(f"{base}/readyz")
            except OSError:
                ready = (0, "")
            if ready[0] == 200:
                break
            time.sleep(0.2)
        assert ready[0] == 200, ready
        assert _get(f"{base}/healthz")[0] == 200
        status, metrics = _get(f"{base}/metrics")
        assert status == 200 and "claresia_up" in metrics
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=15)
        assert code == 0, daemon.stderr.read()[-2000:]
        assert time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        assert daemon.stderr is not None
        daemon.stderr.close()


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_pinned_non_root_with_healthcheck() -> None:
    instr = _dockerfile_instructions()
    args = dict(v.split("=", 1) for w, v in instr if w == "ARG" and "=" in v)
    froms = [v for w, v in instr if w == "FROM"]
    assert len(froms) >= 2, "build and runtime stages"
    bases = [args.get(f.split()[0].strip("${}"), f.split()[0]) for f in froms]
    for base in bases:
        assert re.fullmatch(r"python:3\.1[12]\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    assert "AS build" in froms[0] and "--from=build" in DOCKERFILE.read_text()
    # The runtime stage: no compiler installed, a numeric non-root user.
    runtime = DOCKERFILE.read_text().split(froms[-1], 1)[1]
    assert not re.search(r"\b(gcc|build-essential|g\+\+|clang)\b", runtime)
    (user,) = [v for w, v in instr if w == "USER"]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0
    # The shipped data link matches the Python of the base image.
    minor = re.match(r"python:(3\.\d+)", bases[-1])
    assert minor and f"/opt/venv/lib/python{minor.group(1)}/site-packages" in runtime
    (health,) = [v for w, v in instr if w == "HEALTHCHECK"]
    assert "urllib" in health and f"127.0.0.1:{OPS_PORT}/healthz" in health
    assert "curl" not in health
    assert _exec_form("ENTRYPOINT") == [SCRIPT]
    assert _exec_form("CMD")[0] == "run"
    assert f"EXPOSE {OPS_PORT}" in DOCKERFILE.read_text()


def test_dockerignore_keeps_what_the_wheel_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/*") for line in lines if line.startswith("!")}
    force = _pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    needed = {"pyproject.toml", "README.md", "claresia_sync", *force}
    missing = {p for p in needed if not any(p == k or p.startswith(k + "/") for k in kept)}
    assert not missing, missing
    copied = " ".join(v for w, v in _dockerfile_instructions() if w == "COPY")
    for path in needed:
        assert Path(path).name in copied or Path(path).parent.name in copied, path
    assert ".venv" not in kept and ".git" not in kept


# --- compose ---------------------------------------------------------------------------------


def test_compose_services_and_order() -> None:
    services = _compose()["services"]
    assert {"postgres", "migrate", "setup", "daemon", "emulator"} <= services.keys()
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16") and "healthcheck" in pg
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    daemon = services["daemon"]
    assert daemon["deploy"]["replicas"] == 2
    assert daemon["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert daemon["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert services["setup"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for name, svc in services.items():
        if name == "postgres" or "monitoring" in svc.get("profiles", []):
            continue  # third-party images (monitoring: tests/integration/test_center_monitoring.py)
        assert svc["image"] == services["daemon"]["image"], name
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE.parent / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        assert "CLARESIA_DATABASE_URL" in svc["environment"] or name == "emulator"
        if name != "setup":
            _assert_cli(_compose_command(svc), f"compose {name}")
    emulator = _compose_command(services["emulator"])
    assert emulator[1] == "emulator" and emulator[emulator.index("--host") + 1] == "0.0.0.0"


def test_compose_setup_runs_real_commands_on_an_emulator_tenant_file() -> None:
    services = _compose()["services"]
    setup = services["setup"]
    (script,) = setup["command"]
    lines = [shlex.split(line) for line in script.splitlines() if line.strip()]
    assert [line[1:3] for line in lines][:2] == [["catalog", "import"], ["tenants", "apply"]]
    for line in lines:
        _assert_cli(line, "compose setup")
    mounts = dict(v.split(":")[:2][::-1] for v in setup["volumes"])
    host_file = COMPOSE.parent / mounts[lines[1][3]]
    config = load_tenants(host_file)
    assert not check_consistency(config)
    env = setup["environment"]
    emulator_cmd = services["emulator"]["command"]
    emulator_port = emulator_cmd[emulator_cmd.index("--port") + 1]
    seed = yaml.safe_load((DEPLOY / "emulator.seed.yaml").read_text())
    seeded = {k["key"] for org in seed["organizations"] for k in org.get("admin_keys", [])}
    seeded |= {k["key"] for org in seed["organizations"] for k in org.get("api_keys", [])}
    for tenant in config.tenants:
        places = _places(tenant)
        assert places, f"{tenant.slug}: no connection and no target"
        for base_url, ref in places:
            assert base_url == f"http://emulator:{emulator_port}", tenant.slug
            kind, _, name = ref.partition(":")
            assert kind == "env" and env[name] in seeded, f"{name}: not a demo key of the emulator"
    assert {t.slug for t in config.tenants} == {
        line[line.index("--tenant") + 1] for line in lines if line[1] == "publish"
    }


def _places(tenant: Any) -> list[tuple[str | None, str]]:
    """(base_url, key reference) of each place a root tenant publishes to: each target, as its
    section stores it (claude-api: one key per workspace)."""
    places: list[tuple[str | None, str]] = []
    for _, section in tenant.target_sections():
        stored = section.stored()
        if stored.admin_key_ref is not None:
            places.append((stored.base_url, stored.admin_key_ref))
        places += [(stored.base_url, ref) for ref in stored.workspace_key_refs.values()]
    return places


def test_deploy_examples_cover_every_example_tenant() -> None:
    """The compose tenants file, the compose environment and the systemd environment example
    hold every tenant and every key reference of deploy/tenants.example.yaml (issue 24)."""
    example = load_tenants(DEPLOY / "tenants.example.yaml")
    compose = load_tenants(DEPLOY / "compose" / "tenants.yaml")
    assert [t.slug for t in compose.tenants] == [t.slug for t in example.tenants]
    refs = {ref for t in example.tenants for _, ref in _places(t)}
    names = {ref.partition(":")[2] for ref in refs if ref.startswith("env:")}
    assert len(names) >= 4  # one per target kind at least
    compose_env = _compose()["services"]["setup"]["environment"]
    systemd_env = {
        line.split("=", 1)[0].lstrip("#")
        for line in (UNIT.parent / "claresia-sync.env.example").read_text().splitlines()
        if "=" in line and not line.startswith("# ")
    }
    assert names - set(compose_env) == set(), "compose.yaml lacks these keys"
    assert names - systemd_env == set(), "claresia-sync.env.example lacks these keys"
    # The same targets per tenant (the compose file only adds the emulator's base_url).
    for ex, co in zip(example.tenants, compose.tenants, strict=True):
        assert [ref for _, ref in _places(ex)] == [ref for _, ref in _places(co)], ex.slug


# --- Kubernetes ------------------------------------------------------------------------------


def test_every_k8s_manifest_has_the_required_fields() -> None:
    objects = _k8s_objects()
    kinds = {d["kind"] for _, d in objects}
    assert {"Deployment", "Job", "Service", "ConfigMap", "Secret", "Kustomization"} <= kinds
    for path, d in objects:
        assert d.get("apiVersion") and d.get("kind"), path
        if d["kind"] != "Kustomization":
            assert d.get("metadata", {}).get("name"), path
    listed = set(_documents(K8S / "kustomization.yaml")[0]["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed <= on_disk
    # The example Secret (placeholders) is never applied by the kustomization.
    assert on_disk - listed == {"secret.example.yaml"}
    for secret in _documents(K8S / "secret.example.yaml"):
        assert secret["kind"] == "Secret"
        for value in secret["stringData"].values():
            assert "REPLACE_ME" in value and not value.startswith("sk-ant")


def test_deployment_replicas_probes_resources_security() -> None:
    (deployment,) = _by_kind("Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = _pod_spec(deployment)
    assert pod["terminationGracePeriodSeconds"] >= 15
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    c = _daemon_container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    argv = _k8s_command(c)
    assert ports[c["livenessProbe"]["httpGet"]["port"]] == OPS_PORT
    assert ports[c["readinessProbe"]["httpGet"]["port"]] == OPS_PORT
    assert argv[argv.index("--ops-port") + 1] == str(OPS_PORT)
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for container in _containers(deployment):
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"] and container["resources"]["limits"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get("/tmp") in tmp_volumes
        _assert_cli(_k8s_command(container), f"Deployment {container['name']}")
        env = {e["name"]: e for e in container["env"]}
        ref = env["CLARESIA_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert "value" not in env["CLARESIA_DATABASE_URL"]
        _assert_example_secret_has(ref["name"], ref["key"])
    assert _pod_spec(deployment)["initContainers"][0]["args"] == ["db", "upgrade"]


def _assert_example_secret_has(name: str, key: str | None = None) -> None:
    secrets = {s["metadata"]["name"]: s for s in _documents(K8S / "secret.example.yaml")}
    assert name in secrets, f"Secret {name} is not described in secret.example.yaml"
    if key is not None:
        assert key in secrets[name]["stringData"]


def test_jobs_run_real_commands_and_the_configmap_tenants_reference_mounted_keys() -> None:
    jobs = {j["metadata"]["name"]: j for j in _by_kind("Job")}
    assert any(j.endswith("migrate") for j in jobs)
    (tenants_job,) = [j for n, j in jobs.items() if "tenants" in n]
    for job in jobs.values():
        assert _pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")
        assert _pod_spec(job)["securityContext"]["runAsNonRoot"] is True
        for container in _containers(job):
            _assert_cli(_k8s_command(container), f"Job {container['name']}")
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
    commands = [_k8s_command(c)[1:3] for c in _containers(tenants_job)]
    assert commands.index(["catalog", "import"]) < commands.index(["tenants", "apply"])
    # The tenants file the Job applies is the ConfigMap's, and it is valid.
    configmaps = {c["metadata"]["name"]: c for c in _by_kind("ConfigMap")}
    volumes = {v["name"]: v for v in _pod_spec(tenants_job)["volumes"]}
    (apply,) = [c for c in _containers(tenants_job) if c["args"][:2] == ["tenants", "apply"]]
    path = Path(apply["args"][2])
    (mount,) = [m for m in apply["volumeMounts"] if m["mountPath"] == str(path.parent)]
    cm = configmaps[volumes[mount["name"]]["configMap"]["name"]]
    config = parse_tenants(cm["data"][path.name], "configmap")
    assert not check_consistency(config)
    grants = {g for t in config.tenants for a in t.archetypes for g in a.grants}
    assert grants <= CATALOG
    # Keys by reference only: files of the mounted Secret, as in the Deployment.
    (deployment,) = _by_kind("Deployment")
    for pod in (_pod_spec(deployment), _pod_spec(tenants_job)):
        secret_vols = {
            v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v
        }
        (daemon_or_job,) = pod["containers"]
        key_mounts = {
            m["mountPath"]: secret_vols[m["name"]]
            for m in daemon_or_job["volumeMounts"]
            if m["name"] in secret_vols
        }
        for tenant in config.tenants:
            org_skills = tenant.section("org-skills")
            assert org_skills is not None and tenant.connection is None  # the preferred spelling
            kind, _, target = org_skills.admin_key.partition(":")
            assert kind == "file"
            secret = key_mounts[str(Path(target).parent)]
            _assert_example_secret_has(secret, Path(target).name)
    assert "sk-ant" not in (K8S / "configmap.yaml").read_text()


def test_metrics_service_is_scrapable() -> None:
    services = _by_kind("Service")
    (svc,) = [s for s in services if "metrics" in s["metadata"]["name"]]
    ann = svc["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert ann["prometheus.io/port"] == str(OPS_PORT) and ann["prometheus.io/path"] == "/metrics"
    (deployment,) = _by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in _daemon_container()["ports"]}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_manifests() -> None:
    proc = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds.count("Deployment") == 1 and kinds.count("Job") == 2
    assert "Secret" not in kinds
    for d in rendered:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "claresia"
        if d["kind"] in ("Deployment", "Job"):
            for c in _containers(d):
                assert c["image"].rsplit(":", 1)[1] == VERSION, c["image"]


# --- systemd ---------------------------------------------------------------------------------


def test_systemd_unit_hardening_and_environment_file() -> None:
    unit = _unit()
    for key, value in {
        "Service.NoNewPrivileges": "yes",
        "Service.ProtectSystem": "strict",
        "Service.Restart": "on-failure",
        "Service.TimeoutStopSec": "15",
        "Service.KillSignal": "SIGTERM",
        "Service.StateDirectory": "claresia-sync",
    }.items():
        assert unit.get(key) == [value], key
    assert unit.get("Service.DynamicUser") == ["yes"] or unit.get("Service.User")
    (env_file,) = unit["Service.EnvironmentFile"]
    example = UNIT.parent / "claresia-sync.env.example"
    assert Path(env_file.lstrip("-")).name == example.name.removesuffix(".example")
    names = {
        line.split("=", 1)[0].lstrip("#")
        for line in example.read_text().splitlines()
        if "=" in line and not line.startswith("# ")
    }
    assert "CLARESIA_DATABASE_URL" in names
    assert "sk-ant" not in example.read_text()


@pytest.mark.skipif(
    not Path("/usr/bin/systemd-analyze").exists() and shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed",
)
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit names /opt/claresia-sync/bin/claresia-sync, which must exist for `verify`: check a
    copy pointing at this interpreter's script (only that path changes)."""
    text = UNIT.read_text()
    installed = re.search(r"ExecStart=(\S+)", text)
    assert installed and installed.group(1).endswith(f"/bin/{SCRIPT}")
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(installed.group(1), _script_path()))
    tool = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    proc = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [
        line
        for line in proc.stderr.splitlines()
        if UNIT.name in line or "Unknown" in line or "Invalid" in line
    ]
    assert proc.returncode == 0 and not problems, proc.stderr


# --- docker compose --------------------------------------------------------------------------


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
    )
    return probe.returncode == 0


def test_docker_compose_config() -> None:
    if not _compose_plugin():
        pytest.skip("the Docker Compose plugin (`docker compose`) is not installed here")
    proc = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# --- the guide -------------------------------------------------------------------------------


def test_deployment_guide_covers_metrics_variables_and_the_runbook() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    metrics_src = (ROOT / "claresia_sync" / "daemon" / "metrics.py").read_text(encoding="utf-8")
    metrics = set(re.findall(r'"(claresia_[a-z_]+)"', metrics_src))
    assert len(metrics) >= 8
    for name in metrics:
        assert f"`{name}" in guide, f"metric {name} is not explained in docs/deployment.md"
    env_names = set(re.findall(r"\bCLARESIA_[A-Z_]+(?<!_)\b", _sources()))
    for name in env_names - {"CLARESIA_TEST_DATABASE_URL", "CLARESIA_CHAOS_KILLS"}:
        if not name.endswith("_KEY"):  # key references: names a tenant file chooses
            assert name in guide, f"variable {name} is not documented in docs/deployment.md"
    for symptom in (
        "Skills don't appear in the @ picker",
        "Telemetry never appears",
        "403 on publish",
        "sees @claresia skills they shouldn't",
    ):
        assert f"### {symptom}" in guide or symptom in guide, symptom
    assert "docs/deployment.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def _sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "claresia_sync").rglob("*.py"))
