"""cdpoc.appspec.validate_bundle: the check push-app runs on bundle/ before committing it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdpoc.appspec import validate_bundle

REPO_BUNDLE = Path(__file__).resolve().parents[1] / "bundle"

VALID: dict[str, Any] = {
    "version": 0.0,
    "os": "linux",
    "files": [{"source": "app", "destination": "/opt/demo/app"}],
    "hooks": {
        "ApplicationStop": [{"location": "scripts/stop.sh", "timeout": 60, "runas": "root"}],
        "AfterInstall": [{"location": "scripts/install.sh", "timeout": 600, "runas": "root"}],
        "ValidateService": [{"location": "scripts/validate.sh", "timeout": 120}],
    },
}


@pytest.fixture
def bundle(tmp_path: Path) -> Callable[..., Path]:
    """Write a small revision (app/, executable scripts/) with the given appspec; return its path."""

    def make(appspec: Any = VALID, raw: str | None = None) -> Path:
        (tmp_path / "app").mkdir(exist_ok=True)
        (tmp_path / "app" / "main.py").write_text("print('hi')\n")
        (tmp_path / "scripts").mkdir(exist_ok=True)
        for name in ("stop.sh", "install.sh", "validate.sh"):
            script = tmp_path / "scripts" / name
            script.write_text("#!/bin/bash\ntrue\n")
            script.chmod(0o755)
        text = raw if raw is not None else yaml.safe_dump(appspec, sort_keys=False)
        (tmp_path / "appspec.yml").write_text(text)
        return tmp_path

    return make


def changed(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    edit(doc)
    return doc


def test_the_repository_bundle_is_valid() -> None:
    assert validate_bundle(REPO_BUNDLE) == []


def test_a_valid_bundle_has_no_problems(bundle: Callable[..., Path]) -> None:
    assert validate_bundle(bundle()) == []


@pytest.mark.parametrize(
    "doc",
    [
        changed(lambda d: d.update(version="0.0")),
        changed(lambda d: d.update(files=[{"source": "/", "destination": "/opt/demo"}])),
        changed(lambda d: d.update(file_exists_behavior="OVERWRITE")),
        changed(lambda d: d.update(permissions=[{"object": "/opt/demo", "owner": "root", "mode": 755}])),
        changed(lambda d: d["hooks"].update(BeforeAllowTraffic=[{"location": "scripts/stop.sh"}])),
    ],
    ids=["quoted version", "whole revision", "file_exists_behavior", "permissions", "traffic hook"],
)
def test_other_valid_forms_are_accepted(bundle: Callable[..., Path], doc: dict[str, Any]) -> None:
    assert validate_bundle(bundle(doc)) == []


def test_missing_appspec_is_reported(tmp_path: Path) -> None:
    assert validate_bundle(tmp_path) == [f"appspec.yml: not found in {tmp_path}"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("version: 0.0\nos: [linux\n", "not valid YAML"),
        ("- version: 0.0\n", "must be a YAML mapping"),
        ("", "must be a YAML mapping"),
        ("version: 0.0\nos: linux\nos: windows\n", "duplicate key 'os' (line 3)"),
    ],
    ids=["syntax", "list", "empty", "duplicate key"],
)
def test_unreadable_appspec_is_reported(bundle: Callable[..., Path], raw: str, fragment: str) -> None:
    (problem,) = validate_bundle(bundle(raw=raw))
    assert problem.startswith("appspec.yml: ")
    assert fragment in problem


def test_script_that_is_not_executable_is_reported(bundle: Callable[..., Path]) -> None:
    root = bundle()
    (root / "scripts" / "install.sh").chmod(0o644)
    assert validate_bundle(root) == [
        "appspec.yml: hooks.AfterInstall[0].location: scripts/install.sh is not executable "
        "(chmod +x; CodeDeploy refuses to run it)"
    ]


def test_windows_scripts_need_no_executable_bit(bundle: Callable[..., Path]) -> None:
    doc = changed(lambda d: d.update(os="windows", files=[{"source": "app", "destination": "C:\\demo"}]))
    root = bundle(doc)
    (root / "scripts" / "install.sh").chmod(0o644)
    assert validate_bundle(root) == []


PROBLEMS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown top-level key": (lambda d: d.update(hook={}), "unknown top-level key 'hook'"),
    "version missing": (lambda d: d.pop("version"), "version is missing"),
    "version wrong": (lambda d: d.update(version=1.0), "version must be 0.0"),
    "os missing": (lambda d: d.pop("os"), "os is missing"),
    "os wrong": (lambda d: d.update(os="ubuntu"), "os must be linux or windows, not 'ubuntu'"),
    "files not a list": (lambda d: d.update(files={"source": "app"}), "files must be a list"),
    "file entry not a mapping": (lambda d: d.update(files=["app"]), "files[0] must be a mapping"),
    "source missing": (lambda d: d["files"][0].pop("source"), "files[0].source is missing"),
    "source absent from bundle": (
        lambda d: d["files"][0].update(source="api"),
        "files[0].source: api does not exist in the bundle",
    ),
    "source outside bundle": (
        lambda d: d["files"][0].update(source="../secrets"),
        "files[0].source: '../secrets' points outside the bundle",
    ),
    "destination missing": (lambda d: d["files"][0].pop("destination"), "files[0].destination is missing"),
    "destination relative": (
        lambda d: d["files"][0].update(destination="opt/demo"),
        "files[0].destination must be an absolute path",
    ),
    "file entry unknown key": (lambda d: d["files"][0].update(mode=644), "files[0]: unknown key 'mode'"),
    "file_exists_behavior wrong": (
        lambda d: d.update(file_exists_behavior="REPLACE"),
        "file_exists_behavior must be one of",
    ),
    "permissions wrong": (lambda d: d.update(permissions=[{"mode": 755}]), "permissions[0] must be a mapping"),
    "hooks not a mapping": (lambda d: d.update(hooks=["ApplicationStop"]), "hooks must be a mapping"),
    "reserved hook": (
        lambda d: d["hooks"].update(DownloadBundle=[{"location": "scripts/stop.sh"}]),
        "hooks.DownloadBundle: CodeDeploy runs this event itself",
    ),
    "unknown hook": (
        lambda d: d["hooks"].update(AfterStart=[{"location": "scripts/stop.sh"}]),
        "hooks.AfterStart: unknown lifecycle event",
    ),
    "hook not a list": (
        lambda d: d["hooks"].update(ApplicationStop={"location": "scripts/stop.sh"}),
        "hooks.ApplicationStop must be a non-empty list",
    ),
    "hook empty": (lambda d: d["hooks"].update(ApplicationStop=[]), "hooks.ApplicationStop must be a non-empty"),
    "script not a mapping": (
        lambda d: d["hooks"].update(ApplicationStop=["scripts/stop.sh"]),
        "hooks.ApplicationStop[0] must be a mapping",
    ),
    "location missing": (
        lambda d: d["hooks"]["ApplicationStop"][0].pop("location"),
        "hooks.ApplicationStop[0].location is missing",
    ),
    "location absent from bundle": (
        lambda d: d["hooks"]["ApplicationStop"][0].update(location="scripts/stop_api.sh"),
        "hooks.ApplicationStop[0].location: scripts/stop_api.sh does not exist in the bundle",
    ),
    "location is a directory": (
        lambda d: d["hooks"]["ApplicationStop"][0].update(location="scripts"),
        "hooks.ApplicationStop[0].location: scripts is not a file",
    ),
    "timeout too long": (
        lambda d: d["hooks"]["AfterInstall"][0].update(timeout=3601),
        "hooks.AfterInstall[0].timeout must be whole seconds from 1 to 3600, not 3601",
    ),
    "timeout zero": (lambda d: d["hooks"]["AfterInstall"][0].update(timeout=0), "timeout must be whole seconds"),
    "timeout not a number": (
        lambda d: d["hooks"]["AfterInstall"][0].update(timeout="10m"),
        "timeout must be whole seconds from 1 to 3600, not '10m'",
    ),
    "timeouts add up past an hour": (
        lambda d: d["hooks"]["AfterInstall"].append({"location": "scripts/stop.sh", "timeout": 3001}),
        "hooks.AfterInstall: the timeouts add up to 3601 s",
    ),
    "runas empty": (lambda d: d["hooks"]["AfterInstall"][0].update(runas=""), "runas must be a user name"),
    "script unknown key": (
        lambda d: d["hooks"]["AfterInstall"][0].update(sudo=True),
        "hooks.AfterInstall[0]: unknown key 'sudo'",
    ),
}


@pytest.mark.parametrize("case", list(PROBLEMS))
def test_each_problem_is_reported_alone(bundle: Callable[..., Path], case: str) -> None:
    edit, fragment = PROBLEMS[case]

    problems = validate_bundle(bundle(changed(edit)))

    assert len(problems) == 1, problems
    assert problems[0].startswith("appspec.yml: ")
    assert fragment in problems[0]


def test_every_problem_is_listed_at_once(bundle: Callable[..., Path]) -> None:
    def break_everything(d: dict[str, Any]) -> None:
        d.update(version=1, os="solaris", extra=True)
        d["files"][0].update(source="missing-dir")
        d["hooks"]["ApplicationStop"][0].update(location="scripts/nope.sh", timeout=7200)
        d["hooks"]["Install"] = [{"location": "scripts/install.sh"}]

    problems = validate_bundle(bundle(changed(break_everything)))

    expected = [
        "unknown top-level key 'extra'",
        "version must be 0.0",
        "os must be linux or windows",
        "files[0].source: missing-dir does not exist",
        "hooks.ApplicationStop[0].location: scripts/nope.sh does not exist",
        "hooks.ApplicationStop[0].timeout must be whole seconds",
        "hooks.Install: CodeDeploy runs this event itself",
    ]
    assert len(problems) == len(expected), problems
    for fragment in expected:
        assert any(fragment in p for p in problems), f"{fragment!r} not in {problems}"
