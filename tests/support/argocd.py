"""What the Argo CD tier's tests share: the chart's paths, the health harness's type, CRD schemas.

`crd_validator` turns a generated CRD's schema into a jsonschema validator that
refuses unknown fields (the API server would prune them silently, which would
hide a typo in a fixture or an example). The gopher-lua harness itself is a
fixture, in tests/argocd/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "charts" / "argocd"
HEALTH_DIR = ARGOCD / "health"
FIXTURES = REPO / "tests" / "argocd" / "fixtures"

RunHealth = Callable[..., Any]

CRD_DIR = REPO / "charts" / "vectorpipe" / "crds"


def _no_unknown_fields(schema: Any) -> Any:
    """Make a CRD schema refuse unknown fields (the API server would prune them
    silently, which would hide a typo in a fixture or an example)."""
    if isinstance(schema, dict):
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            _no_unknown_fields(value)
    elif isinstance(schema, list):
        for value in schema:
            _no_unknown_fields(value)
    return schema


def crd_validator(kind: str) -> Any:
    """A jsonschema validator for the v1alpha1 schema of our CRD `kind`, from
    charts/vectorpipe/crds/. Fails (never skips) when the chart has no such CRD:
    a renamed kind or a moved chart must not turn the fixture checks green."""
    import jsonschema
    import yaml

    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        if crd.get("kind") != "CustomResourceDefinition" or crd["spec"]["names"]["kind"] != kind:
            continue
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
        schema = _no_unknown_fields(version["schema"]["openAPIV3Schema"])
        return jsonschema.Draft7Validator(schema)
    pytest.fail(f"no CRD for {kind} under {CRD_DIR.relative_to(REPO)}", pytrace=False)
