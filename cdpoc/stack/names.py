"""Deterministic names of the stack's resources, derived from the settings, account and region."""

from __future__ import annotations

from dataclasses import dataclass

from cdpoc.config import Settings


@dataclass(frozen=True)
class ConfiguredNames:
    """The names the settings alone decide: no AWS call is needed to know them (push-app, logs)."""

    settings: Settings

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def iam_path(self) -> str:
        """Every IAM role and profile of the stack lives under this path, so one ListRoles finds them all."""
        return iam_path(self.name)

    @property
    def ssm_prefix(self) -> str:
        return f"/{self.name}/"

    @property
    def log_group(self) -> str:
        return f"/cdpoc/{self.name}"

    @property
    def pipeline(self) -> str:
        return f"{self.name}-pipeline"

    @property
    def codedeploy_application(self) -> str:
        return self.name

    @property
    def deployment_group(self) -> str:
        return f"{self.name}-fleet"

    @property
    def source_rule(self) -> str:
        """The EventBridge rule that starts the pipeline on a push."""
        return f"{self.name}-source-changes"

    @property
    def repository(self) -> str:
        """Configured name, or "<name>-s3upload": one per stack, so no two stacks of an account share one."""
        return self.settings.pipeline.repository or f"{self.name}-s3upload"

    def parameter(self, path: str) -> str:
        """e.g. parameter("mongodb/host") -> "/<name>/mongodb/host"."""
        return f"{self.ssm_prefix}{path}"


@dataclass(frozen=True)
class StackNames(ConfiguredNames):
    """What every declaration needs: the settings' names, the two resolved zones, the account, and the names
    built from the account (buckets, ARNs)."""

    zones: tuple[str, ...]
    account: str

    def bucket(self, purpose: str) -> str:
        """Configured name, or "<name>-<account>-<region>-<purpose>" (fits 63 with a 20-character name)."""
        configured = str(getattr(self.settings.buckets, purpose))
        return configured or f"{self.name}-{self.account}-{self.region}-{purpose}"

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account if account else ''}:{resource}"


def iam_path(stack: str) -> str:
    """The IAM path of a stack's roles and profiles; handlers list by it without the whole settings."""
    return f"/cdpoc/{stack}/"
