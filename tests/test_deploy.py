"""docs/deploy/: each file checked as far as this machine allows (docs/deployment.md says how).

systemd units: `systemd-analyze verify` (skipped without it). Kubernetes: `kubectl kustomize`
parses the YAML offline (skipped without kubectl), plus the settings the docs rely on. cron and
the Dockerfile: their structure. No test needs Docker or a cluster."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"
SYSTEMD = DEPLOY / "systemd"
KUBERNETES = DEPLOY / "kubernetes"
CRMSYNC_BIN = Path(sys.executable).parent / "crmsync"


def unit_settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_units_verify_without_warnings(tmp_path):
    assert CRMSYNC_BIN.exists()
    units = []
    for unit in sorted(SYSTEMD.iterdir()):
        text = unit.read_text().replace("/opt/crmsync/bin/crmsync", str(CRMSYNC_BIN))
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on unknown keys and bad values: it only warns, so warnings fail here
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    # and it does catch mistakes on this machine
    bad = tmp_path / "bad.service"
    bad.write_text((tmp_path / "crmsync-serve.service").read_text().replace("Type=", "Tpye="))
    check = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True)
    assert "Tpye" in check.stderr


def test_systemd_units_say_what_the_docs_say():
    serve = unit_settings(SYSTEMD / "crmsync-serve.service")
    assert serve["ExecStart"][0].split()[1:3] == ["serve", "--log-format"]
    assert serve["KillMode"] == ["mixed"] and serve["KillSignal"] == ["SIGTERM"]
    assert serve["RestartPreventExitStatus"] == ["2"]
    run = unit_settings(SYSTEMD / "crmsync-run.service")
    assert run["Type"] == ["oneshot"] and "run" in run["ExecStart"][0].split()
    assert run["SuccessExitStatus"] == ["75"]
    timer = unit_settings(SYSTEMD / "crmsync-run.timer")
    assert timer["Persistent"] == ["true"] and timer["Unit"] == ["crmsync-run.service"]
    assert timer["OnCalendar"] == ["*-*-* 03:00:00 Asia/Shanghai"]


def test_cron_line():
    lines = [
        line
        for line in (DEPLOY / "crmsync.cron").read_text().splitlines()
        if line and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    from crmsync.unattended.schedule import cron_error

    assert cron_error(" ".join(fields[:5])) is None
    assert fields[5] == "crmsync"  # /etc/cron.d lines name the user
    assert "crmsync run" in fields[6] and "set -a" in fields[6]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl here")
def test_kubernetes_yaml_parses(tmp_path):
    for name in ("cronjob.yaml", "serve.yaml"):
        shutil.copy(KUBERNETES / name, tmp_path / name)
    (tmp_path / "kustomization.yaml").write_text("resources:\n- cronjob.yaml\n- serve.yaml\n")
    result = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    kinds = re.findall(r"^kind: (\w+)$", result.stdout, re.M)
    assert sorted(kinds) == ["CronJob", "Deployment", "PersistentVolumeClaim"]


def test_kubernetes_settings():
    text = (KUBERNETES / "cronjob.yaml").read_text()
    for setting in (
        'schedule: "0 3 * * *"',
        'timeZone: "Asia/Shanghai"',
        "concurrencyPolicy: Forbid",
        "restartPolicy: Never",
        "terminationGracePeriodSeconds: 300",
        'args: ["run", "--log-format", "json"]',
        "claimName: crmsync-data",
    ):
        assert setting in text, setting
    serve = (KUBERNETES / "serve.yaml").read_text()
    for setting in (
        "replicas: 1",
        "type: Recreate",
        '"--listen", "0.0.0.0:9464"',
        "path: /healthz",
        "containerPort: 9464",
    ):
        assert setting in serve, setting
    try:
        import yaml
    except ImportError:  # PyYAML is no dependency; kustomize above parses the YAML
        return
    docs = list(yaml.safe_load_all(text))
    cron = next(d for d in docs if d["kind"] == "CronJob")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"][0] == "run"


def test_dockerfile_structure():
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [
        line.split()[0]
        for line in text.splitlines()
        if line and not line.startswith((" ", "#")) and line.split()[0].isupper()
    ]
    assert instructions.count("FROM") == 2 and instructions[0] == "FROM"
    assert re.search(r"^USER 10001:10001$", text, re.M)  # numeric: runAsNonRoot can check it
    assert 'ENTRYPOINT ["crmsync"]' in text
    assert 'CMD ["serve", "--listen", "0.0.0.0:9464"]' in text
    assert "EXPOSE 9464" in text and "/healthz" in text
    # everything the image copies is in the repository and let through the .dockerignore
    root = DEPLOY.parent.parent
    for line in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in line.split():
            assert (root / source).exists(), source
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert "!crmsync/**" in ignore and "!connectors/**" in ignore and "!pyproject.toml" in ignore
