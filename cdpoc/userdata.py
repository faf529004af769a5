"""User data scripts: a typed description in, the boot script's text out (pure: no AWS, no boto3).

Each script is a file in cdpoc/templates with `@@{name}` placeholders, described by a frozen dataclass
whose fields are those placeholders (a `Script` subclass naming its template). A field is literal text,
a Ref to another declared resource (its id, or one of its observed attributes), or an Origin of such a
Ref (only scheme://host of a URL). The Refs are graph edges like any spec's (cdpoc.spec.refs walks
nested dataclasses), so what a script needs from another resource exists before it is rendered.

Scripts carry names, never secrets: the instances read those from SSM themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import ClassVar
from urllib.parse import urlsplit

from cdpoc.errors import CdpocError, ConfigError
from cdpoc.model import Observed
from cdpoc.spec import Ref

# RunInstances and launch templates take at most 16 KB of user data, counted before base64.
USER_DATA_LIMIT = 16 * 1024
# What a rendered value may hold: stack, bucket, parameter and log group names, an http origin. None
# of these characters can end the single-quoted shell string (or JSON string) a placeholder sits in.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/@+=,-]+$")


class UserDataError(CdpocError):
    """A script cannot be rendered: a resource it reads from has no value for it."""


@dataclass(frozen=True)
class Origin:
    """scheme://host of the URL a Ref stands for (a site's origin, for CORS)."""

    url: Ref


Value = str | Ref | Origin


@dataclass(frozen=True)
class Script:
    """Base of the scripts: `template` names the file, every field fills the placeholder of its name."""

    template: ClassVar[str] = ""


@dataclass(frozen=True)
class AppInstanceScript(Script):
    """The app instances' boot: CodeDeploy and CloudWatch agents, a stub health server, self-tagging."""

    template: ClassVar[str] = "app-instance.sh"
    stack: Value
    log_group: Value


@dataclass(frozen=True)
class MongoDbScript(Script):
    """MongoDB 8 on its data volume, seeded for the app, with users whose passwords are in SSM."""

    template: ClassVar[str] = "mongodb.sh"
    stack: Value
    admin_password_parameter: Value
    app_password_parameter: Value
    uploads_bucket: Value
    data_device: Value
    web_origin: Value


class ScriptTemplate(string.Template):
    """`@@{name}` placeholders, because `$` belongs to the shell."""

    delimiter = "@@"


def template_text(name: str) -> str:
    return resources.files("cdpoc").joinpath("templates", name).read_text(encoding="utf-8")


def render_script(name: str, values: Mapping[str, str]) -> str:
    """The template `name` with every placeholder filled in; refuses unsafe values and oversized results."""
    for key, value in values.items():
        if not SAFE_VALUE.match(value):
            raise ConfigError(
                f"user data {name}: {key} {value!r} holds characters a boot script cannot take safely",
                "Use names of letters, digits, dots, hyphens and slashes.",
            )
    try:
        script = ScriptTemplate(template_text(name)).substitute(values)
    except KeyError as exc:
        raise ConfigError(f"user data {name}: no value for placeholder {exc.args[0]}") from None
    size = len(script.encode("utf-8"))
    if size > USER_DATA_LIMIT:
        raise ConfigError(f"user data {name} is {size} bytes; EC2 takes at most {USER_DATA_LIMIT}")
    return script


def origin(url: str) -> str:
    """'http://b.s3-website-us-east-1.amazonaws.com/' -> 'http://b.s3-website-us-east-1.amazonaws.com'."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return f"{parts.scheme}://{parts.netloc}"


def _ref_of(value: Value) -> Ref | None:
    if isinstance(value, Origin):
        return value.url
    return value if isinstance(value, Ref) else None


def _resolved(value: Value, deps: Mapping[str, Observed | None]) -> str | None:
    ref = _ref_of(value)
    if ref is None:
        return str(value)
    resolved = ref.value(deps)
    if resolved is None:
        return None
    return origin(resolved) if isinstance(value, Origin) else resolved


def pending(script: Script, deps: Mapping[str, Observed | None]) -> tuple[Ref, ...]:
    """The references the script cannot be rendered without that have no value yet (for a plan)."""
    found = []
    for item in dataclasses.fields(script):
        value = getattr(script, item.name)
        ref = _ref_of(value)
        if ref is not None and _resolved(value, deps) is None:
            found.append(ref)
    return tuple(found)


def values(script: Script, deps: Mapping[str, Observed | None]) -> dict[str, str]:
    """Every placeholder's value: literals as they are, references resolved through `deps`."""
    result = {}
    for item in dataclasses.fields(script):
        value = getattr(script, item.name)
        resolved = _resolved(value, deps)
        if resolved is None:
            ref = _ref_of(value)
            assert ref is not None
            what = f"no {ref.attr}" if ref.attr else "no id yet"
            raise UserDataError(f"{ref.key} has {what}: cannot render {script.template}")
        result[item.name] = resolved
    return result


def render(script: Script, deps: Mapping[str, Observed | None]) -> str:
    """The boot script for `script`, its references resolved through `deps` (the resources they name)."""
    return render_script(script.template, values(script, deps))


def summary(text: str, template: str = "") -> str:
    """A script as a plan shows it: too long to print, so its size and digest (equal scripts, equal text)."""
    if not text:
        return "(none)"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return f"{template + ' ' if template else ''}{len(text.encode('utf-8'))} bytes sha256:{digest}"
