"""Specs of the IAM kinds: roles (trust, inline and managed policies) and instance profiles.

Policy documents are held as canonical JSON text (sorted keys), so that specs stay frozen and hashable;
handlers compare them parsed and normalized (cdpoc.aws.iam.normalize_policy), never as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cdpoc.spec import Ref, Spec


def policy_text(document: Mapping[str, Any]) -> str:
    """A policy document as the canonical JSON text a spec holds (and IAM or S3 is sent)."""
    return json.dumps(document, sort_keys=True)


def policy_document(text: str) -> dict[str, Any]:
    """The document a spec's policy text stands for."""
    return dict(json.loads(text))


@dataclass(frozen=True)
class RoleSpec(Spec):
    """An IAM role under the stack's path.

    path: IAM has no call that moves a role to another path (force_new); the description changes with
    UpdateRole. inline_policies: {policy name: canonical JSON}; managed_policies: ARNs to attach. Both are
    the whole set: an inline policy or attachment the spec does not list is removed.
    """

    kind: ClassVar[str] = "iam_role"
    force_new: ClassVar[frozenset[str]] = frozenset({"path"})
    path: str
    description: str
    assume_role_policy: str
    inline_policies: Mapping[str, str]
    managed_policies: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceProfileSpec(Spec):
    """An instance profile holding exactly one role (AWS allows at most one).

    path: no call moves a profile to another path (force_new); the role is swapped with
    RemoveRoleFromInstanceProfile / AddRoleToInstanceProfile.
    """

    kind: ClassVar[str] = "instance_profile"
    force_new: ClassVar[frozenset[str]] = frozenset({"path"})
    path: str
    role: Ref
