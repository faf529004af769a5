"""AWS's policy evaluation logic for identity-based policies within one account (pure: no moto, no AWS).

What AWS documents ("Policy evaluation logic", IAM User Guide), for a request made by a role:
  1. an explicit Deny in any applicable policy denies the request, whatever allows it;
  2. otherwise an Allow in an identity-based policy allows it, and when the role has a permissions
     boundary the boundary must allow it too;
  3. otherwise it is implicitly denied.
A statement applies when its Action (or NotAction) matches the action, its Resource (or NotResource)
matches the resource, and every condition in its Condition block is true. Actions match case-insensitively,
resources case-sensitively, both with the `*` and `?` wildcards. Policy variables (`${aws:username}`,
`${ec2:SourceInstanceARN}`, the escapes `${*}`, `${?}`, `${$}`, and `${key, 'default'}`) are replaced by
the request's context values in Resource and in condition values; a variable whose key the request does not
have makes that Resource entry or condition value match nothing.

Condition operators: the String*, Arn*, Bool, Null and Numeric* families, with `...IfExists` and the
`ForAllValues:` / `ForAnyValue:` set prefixes; condition keys are case-insensitive, values of the String
operators case-sensitive (except the IgnoreCase ones). A key absent from the request makes a condition false,
except for the negated operators (StringNot*, ArnNot*), IfExists, Null and ForAllValues, as AWS documents.

Trust policies are evaluated the same way with a principal: `may_assume` says whether a service principal
may call sts:AssumeRole on a role, with the aws:SourceAccount / aws:SourceArn the service sends.

Not evaluated here: resource-based policies, SCPs/RCPs, session policies, cross-account access, Principal
in identity-based policies (it has none), NotPrincipal, date and IP operators.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicit deny", "implicit deny"

ContextValue = str | Sequence[str]


@dataclass(frozen=True)
class Request:
    """One action on one resource, with the request's context keys (names as AWS spells them)."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def value(self, key: str) -> list[str] | None:
        """The key's values (case-insensitive key), or None when the request does not carry it."""
        wanted = key.lower()
        for name, value in self.context.items():
            if name.lower() == wanted:
                return [value] if isinstance(value, str) else list(value)
        return None


@dataclass(frozen=True)
class Decision:
    outcome: str  # ALLOWED | EXPLICIT_DENY | IMPLICIT_DENY
    policy: str = ""  # the policy whose statement decided (explicit deny or allow)
    statement: str = ""  # that statement's Sid, or its index

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOWED

    def because(self, request: Request, boundary: bool = False) -> str:
        """The clause AWS appends to an access-denied message."""
        if self.outcome == EXPLICIT_DENY:
            return "with an explicit deny in an identity-based policy"
        if boundary:
            return f"because no permissions boundary allows the {request.action} action"
        return f"because no identity-based policy allows the {request.action} action"


@dataclass(frozen=True)
class Policy:
    name: str
    document: Mapping[str, Any]

    @classmethod
    def parse(cls, name: str, document: Mapping[str, Any] | str) -> Policy:
        return cls(name, json.loads(document) if isinstance(document, str) else document)

    def statements(self) -> list[tuple[str, Mapping[str, Any]]]:
        raw = self.document.get("Statement", [])
        listed = [raw] if isinstance(raw, Mapping) else list(raw)
        return [(str(s.get("Sid", index)), s) for index, s in enumerate(listed)]


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


# ---- policy variables

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


class _Unresolved(Exception):
    """A policy variable names a key the request does not carry (and gives no default)."""


def substitute(text: str, request: Request, *, as_pattern: bool) -> str:
    """Replace ${...} variables with the request's values; escapes stay literal (not wildcards) in patterns."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        if inner in _ESCAPES:
            return _literal(_ESCAPES[inner], as_pattern)
        key, _, default = inner.partition(",")
        values = request.value(key.strip())
        if values and len(values) == 1:
            return _literal(values[0], as_pattern)
        default = default.strip()
        if default.startswith("'") and default.endswith("'") and len(default) >= 2:
            return _literal(default[1:-1], as_pattern)
        raise _Unresolved(key)

    return _VARIABLE.sub(replace, text)


def _literal(text: str, as_pattern: bool) -> str:
    """Text substituted into a pattern matches itself only (a `*` in an ARN is no wildcard there)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text) if as_pattern else text


# ---- matching


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcards: `*` any run of characters (including `/` and `:`), `?` one character."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _action_matches(patterns: Iterable[Any], action: str) -> bool:
    return any(wildcard_match(str(p), action, ignore_case=True) for p in patterns)


def _resource_matches(patterns: Iterable[Any], request: Request) -> bool:
    for pattern in patterns:
        try:
            resolved = substitute(str(pattern), request, as_pattern=True)
        except _Unresolved:
            continue
        if _arn_like(resolved, request.resource):
            return True
    return False


def _arn_like(pattern: str, arn: str) -> bool:
    """ARNs match component by component (the first five `:`); the last part may hold more colons."""
    if pattern == "*":
        return True
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return wildcard_match(pattern, arn)
    return all(wildcard_match(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


# ---- conditions


def _string_equals(pattern: str, value: str) -> bool:
    return pattern == value


def _string_equals_ignore_case(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


def _string_like(pattern: str, value: str) -> bool:
    return wildcard_match(pattern, value)


def _numeric(compare: str) -> Any:
    def test(pattern: str, value: str) -> bool:
        try:
            a, b = float(value), float(pattern)
        except ValueError:
            return False
        return {
            "eq": a == b,
            "lt": a < b,
            "le": a <= b,
            "gt": a > b,
            "ge": a >= b,
        }[compare]

    return test


def _bool(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


# operator -> (value test, negated, values are patterns that may hold wildcards)
_OPERATORS: dict[str, tuple[Any, bool, bool]] = {
    "stringequals": (_string_equals, False, False),
    "stringnotequals": (_string_equals, True, False),
    "stringequalsignorecase": (_string_equals_ignore_case, False, False),
    "stringnotequalsignorecase": (_string_equals_ignore_case, True, False),
    "stringlike": (_string_like, False, True),
    "stringnotlike": (_string_like, True, True),
    "arnequals": (_arn_like, False, True),
    "arnlike": (_arn_like, False, True),
    "arnnotequals": (_arn_like, True, True),
    "arnnotlike": (_arn_like, True, True),
    "bool": (_bool, False, False),
    "numericequals": (_numeric("eq"), False, False),
    "numericnotequals": (_numeric("eq"), True, False),
    "numericlessthan": (_numeric("lt"), False, False),
    "numericlessthanequals": (_numeric("le"), False, False),
    "numericgreaterthan": (_numeric("gt"), False, False),
    "numericgreaterthanequals": (_numeric("ge"), False, False),
}


class UnsupportedCondition(ValueError):
    """An operator this evaluator does not know: refusing is safer than guessing (it would grant or deny)."""


def condition_holds(operator: str, key: str, wanted: Any, request: Request) -> bool:
    """One key of one operator of a Condition block (values of one key are ORed)."""
    name = operator.lower()
    qualifier = ""
    if ":" in name:
        qualifier, name = name.split(":", 1)
    if_exists = name.endswith("ifexists") and name != "null"
    if if_exists:
        name = name[: -len("ifexists")]
    present = request.value(key)
    if name == "null":
        want_absent = any(str(v).lower() == "true" for v in _listed(wanted))
        return (present is None) == want_absent
    if name not in _OPERATORS:
        raise UnsupportedCondition(f"condition operator {operator} is not evaluated by the sandbox")
    test, negated, patterns = _OPERATORS[name]
    if present is None:
        # AWS: an absent key makes the condition false, true for the negated operators, IfExists and
        # ForAllValues (an empty set satisfies "all").
        return if_exists or negated or qualifier == "forallvalues"
    resolved = []
    for value in _listed(wanted):
        try:
            resolved.append(substitute(str(value), request, as_pattern=patterns))
        except _Unresolved:
            continue  # a value naming an absent key matches nothing

    def matches(actual: str) -> bool:
        return any(test(pattern, actual) for pattern in resolved)

    if qualifier == "forallvalues":
        result = all(matches(v) for v in present)
        return not result if negated else result
    if qualifier == "foranyvalue":
        result = any(matches(v) for v in present)
        return not result if negated else result
    # a single-valued key: the negated operators are true when no value matches
    result = any(matches(v) for v in present)
    return not result if negated else result


def _conditions_hold(block: Mapping[str, Any] | None, request: Request) -> bool:
    for operator, keys in (block or {}).items():
        for key, wanted in (keys or {}).items():
            if not condition_holds(operator, key, wanted, request):
                return False
    return True


# ---- statements and policies


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not _action_matches(_listed(statement["Action"]), request.action):
            return False
    elif "NotAction" in statement:
        if _action_matches(_listed(statement["NotAction"]), request.action):
            return False
    else:
        return False
    if "Resource" in statement:
        if not _resource_matches(_listed(statement["Resource"]), request):
            return False
    elif "NotResource" in statement:
        if _resource_matches(_listed(statement["NotResource"]), request):
            return False
    else:
        return False
    return _conditions_hold(statement.get("Condition"), request)


def evaluate(policies: Iterable[Policy], request: Request) -> Decision:
    """Explicit deny beats allow; no allow is an implicit deny (identity-based policies of one account)."""
    allow: Decision | None = None
    for policy in policies:
        for sid, statement in policy.statements():
            if not statement_applies(statement, request):
                continue
            if statement.get("Effect") == "Deny":
                return Decision(EXPLICIT_DENY, policy.name, sid)
            if statement.get("Effect") == "Allow" and allow is None:
                allow = Decision(ALLOWED, policy.name, sid)
    return allow or Decision(IMPLICIT_DENY)


@dataclass(frozen=True)
class Principal:
    """What a role's identity-based policies and its permissions boundary (if any) are."""

    arn: str
    policies: tuple[Policy, ...]
    boundary: Policy | None = None


@dataclass(frozen=True)
class Verdict:
    request: Request
    decision: Decision
    boundary_denied: bool = False

    @property
    def allowed(self) -> bool:
        return self.decision.allowed and not self.boundary_denied

    def reason(self) -> str:
        return self.decision.because(self.request, boundary=self.boundary_denied)


def authorize(principal: Principal, request: Request) -> Verdict:
    """The identity policies, then the permissions boundary: both must allow; a deny in either wins."""
    decision = evaluate(principal.policies, request)
    if principal.boundary is None or decision.outcome == EXPLICIT_DENY:
        return Verdict(request, decision)
    bounded = evaluate((principal.boundary,), request)
    if bounded.outcome == EXPLICIT_DENY:
        return Verdict(request, bounded)
    return Verdict(request, decision, boundary_denied=decision.allowed and not bounded.allowed)


def first_denied(principal: Principal, requests: Iterable[Request]) -> Verdict | None:
    """The first request, in the order the service makes them, that the principal may not make."""
    for request in requests:
        verdict = authorize(principal, request)
        if not verdict.allowed:
            return verdict
    return None


def not_authorized(caller: str, verdict: Verdict) -> str:
    """AWS's access-denied text: `User: <arn> is not authorized to perform: <action> on resource: <arn> <why>`."""
    request = verdict.request
    return f"User: {caller} is not authorized to perform: {request.action} on resource: {request.resource} " + (
        verdict.reason()
    )


# ---- trust policies


def may_assume(
    trust_policy: Mapping[str, Any] | str,
    service: str,
    action: str = "sts:AssumeRole",
    source: Mapping[str, ContextValue] | None = None,
) -> bool:
    """Whether the role's trust policy lets the service principal assume it (explicit deny wins).

    `source`: the context keys the service sends with its AssumeRole on a customer's behalf (aws:SourceAccount,
    aws:SourceArn), which trust policies hold against the confused deputy; a service that sends none (EC2 for an
    instance profile) leaves them absent, so a condition on them is false there."""
    document = json.loads(trust_policy) if isinstance(trust_policy, str) else trust_policy
    request = Request(action, "*", {"aws:PrincipalServiceName": service, **(source or {})})
    allowed = False
    for _, statement in Policy("trust", document).statements():
        if not _principal_matches(statement.get("Principal"), service):
            continue
        actions = _listed(statement.get("Action"))
        if "Action" in statement and not _action_matches(actions, action):
            continue
        if "NotAction" in statement and _action_matches(_listed(statement["NotAction"]), action):
            continue
        if not _conditions_hold(statement.get("Condition"), request):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    return any(wildcard_match(str(p), service) for p in _listed(principal.get("Service")))
