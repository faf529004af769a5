"""What cdpoc's bundle and user data do on an instance with its instance profile's role, and what they print
when IAM refuses (evaluated with cdpoc/sandbox/service_roles.py).

The sandbox runs no scripts; it knows which AWS calls cdpoc's own scripts make and asks IAM the same question
when the script would ask it, where the sandbox simulates the effect:

- AfterInstall (bundle/scripts/after_install.sh) reads SSM /<stack>/mongodb/host with `aws ssm get-parameter`
  to write /etc/s3upload.env (the stack is the instance's cdpoc:stack tag, which the script reads from the
  instance metadata). Refused: the CLI's error and the script's `die` line on stderr, exit 1: AfterInstall
  fails with CodeDeploy's ScriptFailed.
- The app (bundle/app/s3upload/services.py) reads the SecureString /<stack>/mongodb/app-password when it
  starts. Refused: boto3 raises, the process exits, systemd restarts it every 5 s (Restart=always) and it exits
  again. ApplicationStart still succeeds (`systemctl restart` of a Type=exec unit returns once the process is
  started), nothing ever listens on port 80, and ValidateService (bundle/scripts/validate_service.sh) gives up
  after its 120 s, printing the unit's journal, whose last lines are the AccessDeniedException.
- The MongoDB instance's user data (cdpoc/templates/mongodb.sh) reads both MongoDB passwords with
  `aws ssm get-parameter --with-decryption` once mongod is installed. Refused: retried 20 times (about 16
  minutes), then the script gives up: mongod stays bound to localhost without users, so it never becomes
  ready for the app (cdpoc/sandbox/health.py).

Not evaluated, because the sandbox does not simulate the effect: the app's S3 uploads (the simulated app
serves / and /health only), the CloudWatch agent shipping logs (the sandbox ships no instance logs), the
CodeDeploy agent's installation (the installer is fetched with an unsigned wget from AWS's public bucket),
Session Manager.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cdpoc.sandbox import service_roles
from cdpoc.sandbox.deployments import Diagnostics, DiagnosticsAt, InstanceFailure, Script

STACK_TAG = "cdpoc:stack"
# The bundle's hook scripts whose AWS calls are modelled (bundle/appspec.yml).
AFTER_INSTALL = Script("scripts/after_install.sh")
APPLICATION_START = Script("scripts/application_start.sh")
VALIDATE_SERVICE = Script("scripts/validate_service.sh")
# validate_service.sh: CDPOC_VALIDATE_TIMEOUT and CDPOC_VALIDATE_INTERVAL as the bundle sets them on an instance
VALIDATE_TIMEOUT, VALIDATE_INTERVAL = 120, 2
CONNECTION_REFUSED = "curl: (7) Failed to connect to 127.0.0.1 port 80 after 0 ms: Couldn't connect to server"
# templates/mongodb.sh renders the two parameter names into these lines
MONGODB_SECRET_LINE = re.compile(rb"^readonly (?:ADMIN|APP)_PASSWORD_PARAMETER='([^']+)'$", re.MULTILINE)
SECRETS_VERDICT = "_cdpoc_secrets_verdict"


def _script_stamp(at: float) -> str:
    """common.sh's log(): `date -u +%Y-%m-%dT%H:%M:%SZ`."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _journal_stamp(at: float) -> str:
    """journalctl's short format (the instance's clock is UTC on Amazon Linux)."""
    return datetime.fromtimestamp(at, UTC).strftime("%b %d %H:%M:%S")


def _lines(*lines: tuple[str, str]) -> str:
    """CodeDeploy's logTail: each line of the script's output prefixed with the stream it went to."""
    return "\n".join(f"[{stream}]{text}" for stream, text in lines)


def _script_failed(script: Script, log_tail: str) -> Diagnostics:
    message = f"Script at specified location: {script.location} run as user {script.runas} failed with exit code 1"
    return Diagnostics("ScriptFailed", script.location, message, log_tail)


def _instance(account: str, region: str, instance_id: str) -> Any:
    from moto.ec2.models import ec2_backends

    try:
        return ec2_backends[account][region].get_instance_by_id(instance_id)
    except Exception:  # moto raises InvalidInstanceID.NotFound for some ids
        return None


def _stack_of(instance: Any) -> str:
    tags = {t.get("key", t.get("Key")): t.get("value", t.get("Value")) for t in instance.get_tags()}
    return str(tags.get(STACK_TAG) or "")


# ---- the bundle's hooks and the app on an app instance


@dataclass(frozen=True)
class BundleOutcome:
    """Where cdpoc's bundle fails on one instance for want of permissions, and whether its app cannot start."""

    failure: InstanceFailure | None = None
    app_down: bool = False


def bundle_outcome(account: str, region: str, instance_id: str, scripts: dict[str, Script]) -> BundleOutcome:
    """What cdpoc's bundle (recognised by its hook scripts) runs into on the instance, asked now."""
    instance = _instance(account, region, instance_id)
    stack = _stack_of(instance) if instance is not None else ""
    if not stack:
        return BundleOutcome()  # not one of cdpoc's instances: its scripts would stop earlier, on the tag
    if scripts.get("AfterInstall") == AFTER_INSTALL:
        host = f"/{stack}/mongodb/host"
        refused = service_roles.instance_parameter_denial(account, region, instance_id, host)
        if refused is not None:
            return BundleOutcome(("AfterInstall", _after_install_refused(host, region, refused)))
    if scripts.get("ApplicationStart") != APPLICATION_START:
        return BundleOutcome()
    password = f"/{stack}/mongodb/app-password"
    refused = service_roles.instance_parameter_denial(account, region, instance_id, password)
    if refused is None:
        return BundleOutcome()
    if scripts.get("ValidateService") != VALIDATE_SERVICE:
        return BundleOutcome(app_down=True)  # nothing checks: the deployment succeeds with the app down
    host = str(getattr(instance, "private_dns_name", "") or instance_id)
    return BundleOutcome(("ValidateService", _validate_gave_up(instance_id, host, refused)), app_down=True)


def _after_install_refused(parameter: str, region: str, refused: str) -> DiagnosticsAt:
    # the AWS CLI's error (after a blank line, left out here), then die()'s line, both on stderr
    def at(_start: float, end: float) -> Diagnostics:
        tail = _lines(
            ("stderr", refused),
            (
                "stderr",
                f"{_script_stamp(end)} [after_install] ERROR: cannot read SSM parameter {parameter} in {region}",
            ),
        )
        return _script_failed(AFTER_INSTALL, tail)

    return at


def _validate_gave_up(instance_id: str, host: str, refused: str) -> DiagnosticsAt:
    attempts = VALIDATE_TIMEOUT // VALIDATE_INTERVAL + 1
    pid = 1000 + zlib.crc32(instance_id.encode()) % 30000  # the app's latest (restarted) process

    def at(start: float, end: float) -> Diagnostics:
        journal = _journal_stamp(end)
        tail = _lines(
            (
                "stdout",
                f"{_script_stamp(start)} [validate_service] waiting up to {VALIDATE_TIMEOUT}s for "
                "http://127.0.0.1:80/health",
            ),
            (
                "stdout",
                f"{_script_stamp(end)} [validate_service] ERROR: not healthy after {VALIDATE_TIMEOUT}s "
                f"({attempts} attempts); last answer: {CONNECTION_REFUSED}",
            ),
            ("stdout", f"{journal} {host} python[{pid}]: botocore.exceptions.ClientError: {refused}"),
            (
                "stdout",
                f"{journal} {host} systemd[1]: s3upload.service: Main process exited, code=exited, status=1/FAILURE",
            ),
            ("stdout", f"{journal} {host} systemd[1]: s3upload.service: Failed with result 'exit-code'."),
        )
        return _script_failed(VALIDATE_SERVICE, tail)

    return at


# ---- the MongoDB instance's user data


def mongodb_secrets(user_data: bytes) -> list[str]:
    """The SSM parameters cdpoc's MongoDB user data reads at boot (none for any other user data)."""
    return [match.decode("utf-8", "replace") for match in MONGODB_SECRET_LINE.findall(user_data)]


def secrets_refused(account: str, region: str, instance: Any, user_data: bytes) -> str | None:
    """Why the MongoDB user data could not read its passwords (None: it could, or it reads none).

    Asked once, the first time anyone looks after the user data read them, and kept: the script gives up for
    good (cloud-init runs user data once per instance), and a later IAM change does not bring it back."""
    if SECRETS_VERDICT not in instance.__dict__:
        verdict = None
        for name in mongodb_secrets(user_data):
            verdict = service_roles.instance_parameter_denial(account, region, instance.id, name)
            if verdict is not None:
                break
        instance.__dict__[SECRETS_VERDICT] = verdict
    refused: str | None = instance.__dict__[SECRETS_VERDICT]
    return refused
