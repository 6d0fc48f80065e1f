"""A small evaluator of identity-based IAM policies, enough to ask "may this role do X?".

It implements the parts of AWS's policy evaluation that the policies in
charts/deploy/eks/iam/ use: Allow and Deny statements, `Action`/`NotAction`
with `*` and `?` wildcards (case-insensitive, as IAM matches actions),
`Resource` ARNs with wildcards (case-sensitive; `*` crosses `/`), and the
`StringLike`/`StringEquals` condition operators over multi-valued keys
(any value matches). An explicit Deny wins; no matching Allow means denied.
Anything else it meets (other operators, `NotResource`, `Principal`) raises,
so a policy it cannot judge fails the test instead of passing it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

SUPPORTED_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "Condition"})
SUPPORTED_OPERATORS = frozenset({"StringLike", "StringEquals"})


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def wildcard(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM's glob: `*` any run of characters (slashes too), `?` one character."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(
            wildcard(p, ignore_case=True).match(action) for p in _as_list(statement["Action"])
        )
    return not any(
        wildcard(p, ignore_case=True).match(action) for p in _as_list(statement["NotAction"])
    )


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, Sequence[str]]) -> bool:
    for operator, clauses in condition.items():
        if operator not in SUPPORTED_OPERATORS:
            raise ValueError(f"condition operator {operator} is not supported by this evaluator")
        for key, expected in clauses.items():
            values = context.get(key)
            if not values:
                return False  # a missing key never satisfies a String* operator
            patterns = _as_list(expected)
            if operator == "StringLike":
                ok = any(wildcard(p).match(v) for p in patterns for v in values)
            else:
                ok = any(v in patterns for v in values)
            if not ok:
                return False
    return True


def allowed(
    policy: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, Sequence[str]] | None = None,
) -> bool:
    """Whether `policy` alone allows `action` on `resource` with these condition keys."""
    context = context or {}
    allow = False
    for statement in policy["Statement"]:
        unknown = set(statement) - SUPPORTED_KEYS
        if unknown:
            raise ValueError(
                f"statement keys {sorted(unknown)} are not supported by this evaluator"
            )
        if not _action_matches(statement, action):
            continue
        if not any(wildcard(p).match(resource) for p in _as_list(statement["Resource"])):
            continue
        if "Condition" in statement and not _condition_holds(statement["Condition"], context):
            continue
        if statement["Effect"] == "Deny":
            return False
        allow = allow or statement["Effect"] == "Allow"
    return allow
