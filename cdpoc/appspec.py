"""Check a CodeDeploy revision (the ``bundle/`` directory) before ``push-app`` commits it.

CodeDeploy only reads ``appspec.yml`` on the instance, minutes after the push, and reports a
mistake as a failed deployment. ``validate_bundle`` finds the same mistakes locally and lists them
all at once, each naming the file and the problem. It covers the EC2/on-premises AppSpec: the
top-level keys, ``version``, ``os``, ``files``, ``hooks`` (and the shape of ``permissions``).

Pure Python with PyYAML; no AWS calls.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import yaml

APPSPEC = "appspec.yml"

TOP_LEVEL_KEYS = frozenset({"version", "os", "files", "permissions", "hooks", "file_exists_behavior"})
OPERATING_SYSTEMS = frozenset({"linux", "windows"})
FILE_EXISTS_BEHAVIORS = frozenset({"DISALLOW", "OVERWRITE", "RETAIN"})
FILE_KEYS = frozenset({"source", "destination"})
SCRIPT_KEYS = frozenset({"location", "timeout", "runas"})

# Lifecycle events of an EC2/on-premises deployment that may run scripts, in the order CodeDeploy
# runs them (AWS CodeDeploy user guide, "AppSpec 'hooks' section").
SCRIPTABLE_HOOKS = (
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
)
# Events CodeDeploy performs itself: naming them in hooks is an error.
RESERVED_HOOKS = frozenset({"Start", "DownloadBundle", "Install", "BlockTraffic", "AllowTraffic", "End"})

# CodeDeploy allows at most one hour of script time per lifecycle event, all its scripts together.
MAX_EVENT_SECONDS = 3600


class _DuplicateKeyError(yaml.YAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which plain YAML silently resolves to the last one
    (a second ``ApplicationStop:`` would otherwise drop the first one's scripts without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKeyError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def validate_bundle(bundle_dir: Path) -> list[str]:
    """Return every problem found in the revision at ``bundle_dir``; an empty list means valid."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / APPSPEC
    if not path.is_file():
        return [f"{APPSPEC}: not found in {bundle_dir}"]
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return [f"{APPSPEC}: not valid YAML: {_one_line(exc)}"]
    if not isinstance(document, dict):
        return [f"{APPSPEC}: must be a YAML mapping (version, os, files, hooks), not {_kind(document)}"]
    return [f"{APPSPEC}: {problem}" for problem in _problems(document, bundle_dir)]


def _problems(doc: dict[object, object], bundle_dir: Path) -> Iterator[str]:
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            yield f"unknown top-level key {key!r} (allowed: {', '.join(sorted(TOP_LEVEL_KEYS))})"
    yield from _check_version(doc.get("version"))
    os_name = doc.get("os")
    yield from _check_os(os_name)
    if "files" in doc:
        yield from _check_files(doc["files"], bundle_dir, os_name)
    if "hooks" in doc:
        yield from _check_hooks(doc["hooks"], bundle_dir, check_executable=os_name != "windows")
    if "permissions" in doc:
        yield from _check_permissions(doc["permissions"])
    behavior = doc.get("file_exists_behavior")
    if behavior is not None and behavior not in FILE_EXISTS_BEHAVIORS:
        allowed = ", ".join(sorted(FILE_EXISTS_BEHAVIORS))
        yield f"file_exists_behavior must be one of {allowed}, not {behavior!r}"


def _check_version(version: object) -> Iterator[str]:
    # YAML reads `0.0` as a float; a quoted "0.0" is accepted too.
    if isinstance(version, bool) or version not in (0.0, "0.0") or not isinstance(version, float | str):
        yield "version must be 0.0" if version is not None else "version is missing (it must be 0.0)"


def _check_os(os_name: object) -> Iterator[str]:
    if os_name is None:
        yield "os is missing (linux or windows)"
    elif os_name not in OPERATING_SYSTEMS:
        yield f"os must be linux or windows, not {os_name!r}"


def _check_files(files: object, bundle_dir: Path, os_name: object) -> Iterator[str]:
    if not isinstance(files, list):
        yield f"files must be a list of {{source, destination}}, not {_kind(files)}"
        return
    for index, entry in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(entry, dict):
            yield f"{where} must be a mapping with source and destination, not {_kind(entry)}"
            continue
        yield from _unknown_keys(where, entry, FILE_KEYS)
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            yield f"{where}.source is missing"
        else:
            yield from _check_bundle_path(f"{where}.source", source, bundle_dir, want_file=False)
        destination = entry.get("destination")
        if not isinstance(destination, str) or not destination.strip():
            yield f"{where}.destination is missing"
        elif os_name != "windows" and not destination.startswith("/"):
            yield f"{where}.destination must be an absolute path, not {destination!r}"


def _check_hooks(hooks: object, bundle_dir: Path, *, check_executable: bool) -> Iterator[str]:
    if not isinstance(hooks, dict):
        yield f"hooks must be a mapping of lifecycle event to scripts, not {_kind(hooks)}"
        return
    for event, scripts in hooks.items():
        if event in RESERVED_HOOKS:
            yield f"hooks.{event}: CodeDeploy runs this event itself; it cannot have scripts"
            continue
        if event not in SCRIPTABLE_HOOKS:
            yield f"hooks.{event}: unknown lifecycle event (allowed: {', '.join(SCRIPTABLE_HOOKS)})"
            continue
        yield from _check_event_scripts(f"hooks.{event}", scripts, bundle_dir, check_executable)


def _check_event_scripts(where: str, scripts: object, bundle_dir: Path, check_executable: bool) -> Iterator[str]:
    if not isinstance(scripts, list) or not scripts:
        yield f"{where} must be a non-empty list of {{location, timeout, runas}}, not {_kind(scripts)}"
        return
    total = 0
    for index, script in enumerate(scripts):
        at = f"{where}[{index}]"
        if not isinstance(script, dict):
            yield f"{at} must be a mapping with location, timeout and runas, not {_kind(script)}"
            continue
        yield from _unknown_keys(at, script, SCRIPT_KEYS)
        location = script.get("location")
        if not isinstance(location, str) or not location.strip():
            yield f"{at}.location is missing"
        else:
            yield from _check_bundle_path(
                f"{at}.location", location, bundle_dir, want_file=True, executable=check_executable
            )
        timeout = script.get("timeout", MAX_EVENT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_EVENT_SECONDS:
            yield f"{at}.timeout must be whole seconds from 1 to {MAX_EVENT_SECONDS}, not {timeout!r}"
        else:
            total += timeout
        runas = script.get("runas")
        if runas is not None and (not isinstance(runas, str) or not runas.strip()):
            yield f"{at}.runas must be a user name, not {runas!r}"
    if len(scripts) > 1 and total > MAX_EVENT_SECONDS:
        yield f"{where}: the timeouts add up to {total} s; CodeDeploy allows {MAX_EVENT_SECONDS} s per event"


def _check_permissions(permissions: object) -> Iterator[str]:
    if not isinstance(permissions, list):
        yield f"permissions must be a list, not {_kind(permissions)}"
        return
    for index, entry in enumerate(permissions):
        if not isinstance(entry, dict) or not isinstance(entry.get("object"), str):
            yield f"permissions[{index}] must be a mapping with an 'object' path"


def _check_bundle_path(
    where: str, value: str, bundle_dir: Path, *, want_file: bool, executable: bool = False
) -> Iterator[str]:
    """Paths in the AppSpec are relative to the revision root; ``/`` alone means the whole revision."""
    relative = PurePosixPath(value.strip().lstrip("/") or ".")
    if ".." in relative.parts:
        yield f"{where}: {value!r} points outside the bundle"
        return
    target = bundle_dir / relative
    if not target.exists():
        yield f"{where}: {value} does not exist in the bundle"
    elif want_file and not target.is_file():
        yield f"{where}: {value} is not a file"
    elif executable and not (target.stat().st_mode & stat.S_IXUSR and os.access(target, os.R_OK)):
        yield f"{where}: {value} is not executable (chmod +x; CodeDeploy refuses to run it)"


def _unknown_keys(where: str, entry: dict[object, object], allowed: frozenset[str]) -> Iterator[str]:
    for key in entry:
        if key not in allowed:
            yield f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
