"""The Prometheus alert rules and the Grafana dashboard in deploy/ hold against the daemon:
promtool accepts the rules and their unit tests and the dashboard's queries, and every metric
they name is one a running daemon exports (the dashboard shows every one it exports)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from tests.fixtures.daemon import ROOT, DaemonProcess
from tests.fixtures.system import debian_program

# A fresh machine installs promtool here first (apt-get, 900 s bound).
pytestmark = pytest.mark.timeout(1200)

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "claresia-sync.json"
METRIC = re.compile(r"\bclaresia_[a-z0-9_]+\b")


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    promtool = debian_program("promtool", "prometheus")
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _alert_exprs() -> dict[str, str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def _dashboard_exprs() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{p['title']} [{t['refId']}]": t["expr"] for p in dashboard["panels"] for t in p["targets"]
    }


def test_promtool_accepts_the_rules_their_tests_and_the_dashboard_queries(tmp_path: Path) -> None:
    assert "SUCCESS: 13 rules found" in _promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in _promtool("test", "rules", "alerts.test.yml")
    # the dashboard's queries, as recording rules (Grafana's interval variable made concrete)
    queries = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(_dashboard_exprs().values())
    ]
    rules = tmp_path / "dashboard.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": queries}]}))
    assert f"SUCCESS: {len(queries)} rules found" in _promtool("check", "rules", str(rules))


def _exported(metrics_text: str) -> dict[str, str]:
    """Sample name -> its family, from the `# TYPE` lines (a family shows them even before
    its first sample, e.g. a counter per organisation before the first poll)."""
    out: dict[str, str] = {}
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, re.M):
        if family.endswith("_created"):
            continue  # the client's creation time of an unlabelled counter or histogram
        samples = [family]
        if kind == "histogram":
            samples = [family + s for s in ("_bucket", "_sum", "_count")]
        elif kind == "counter" and not family.endswith("_total"):
            samples = [family + "_total"]
        out.update(dict.fromkeys(samples, family))
    return out


def test_every_metric_named_is_one_the_daemon_exports(
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = start_daemon()
    text = httpx2.get(f"http://127.0.0.1:{daemon.port}/metrics", timeout=5).text
    exported = _exported(text)
    assert "claresia_up" in exported and "claresia_api_calls_total" in exported
    named: dict[str, set[str]] = {}
    for where, exprs in (("alerts.yml", _alert_exprs()), ("dashboard", _dashboard_exprs())):
        for label, expr in exprs.items():
            for name in METRIC.findall(expr):
                assert name in exported, f"{where}: {label} names {name}, not exported"
                named.setdefault(where, set()).add(exported[name])
    families = set(exported.values())
    missing = families - named["dashboard"]
    assert not missing, f"the dashboard shows no panel for {sorted(missing)}"
    assert {"claresia_up", "claresia_publish_lag_seconds", "claresia_api_calls_total"} <= named[
        "alerts.yml"
    ]


def test_compose_monitoring_profile_mounts_the_rules_and_the_dashboard() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name  # optional
        for volume in services[name]["volumes"]:
            source = (ROOT / "deploy" / volume.split(":")[0]).resolve()
            assert source.exists(), f"{name}: {source} is missing"
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert set(config["rule_files"]) <= mounted
    scrape = config["scrape_configs"][0]["dns_sd_configs"][0]
    daemon_port = services["daemon"]["command"][
        services["daemon"]["command"].index("--ops-port") + 1
    ]
    assert scrape["names"] == ["daemon"] and str(scrape["port"]) == daemon_port
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "claresia-sync.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert json.loads(DASHBOARD.read_text())["uid"] == "claresia-sync"


@pytest.mark.parametrize("path", sorted((ROOT / "deploy" / "grafana").rglob("*.yml")))
def test_grafana_provisioning_files_parse(path: Path) -> None:
    assert yaml.safe_load(path.read_text())["apiVersion"] == 1
