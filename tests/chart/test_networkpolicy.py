"""The chart's NetworkPolicy on the Ray pods, the operator's pod rights and stuck-pod grace.

Rendered by the pinned helm only: the policy is on by default, sits in every
namespace the chart serves (each of rbac.namespaces; in cluster scope the
release namespace plus networkPolicy.namespaces), selects the Ray head and
worker pods the operator's templates label, lets in the Ray pods of the
namespace on every port and only the submitter pods and KubeRay's operator on
the dashboard port, and is gone when turned off. Whether a CNI enforces it is
not something a render can show (docs/security.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.chartlib import Helm, Obj, container, find, only, render
from tests.support.controlplane import Toolchain

RAY = {"app.kubernetes.io/managed-by": "vectorpipe-operator", "app.kubernetes.io/component": "ray"}
SUBMITTER = {**RAY, "app.kubernetes.io/component": "ray-submitter"}
DASHBOARD = [{"port": 8265, "protocol": "TCP"}]


@pytest.fixture(scope="module")
def helm(k8s_toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(k8s_toolchain, tmp_path_factory.mktemp("helm"))


def policies(objs: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["namespace"]: o for o in find(objs, "NetworkPolicy")}


def test_on_by_default_in_the_release_namespace(helm: Helm) -> None:
    (policy,) = policies(render(helm)).values()
    assert policy["metadata"] == {
        **policy["metadata"],
        "name": "vp-vectorpipe-ray",
        "namespace": "vp-system",
    }
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": RAY}
    assert spec["policyTypes"] == ["Ingress"]  # egress (S3, the API server) is left alone
    among_ray, submitter, kuberay = spec["ingress"]
    assert among_ray == {"from": [{"podSelector": {"matchLabels": RAY}}]}  # every port
    assert submitter == {"from": [{"podSelector": {"matchLabels": SUBMITTER}}], "ports": DASHBOARD}
    assert kuberay == {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ray-system"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}},
            }
        ],
        "ports": DASHBOARD,
    }


def test_the_selector_matches_the_operators_ray_pod_labels() -> None:
    from vectorpipe_operator import resources

    assert {resources.LABEL_MANAGED_BY: resources.MANAGER, resources.LABEL_COMPONENT: "ray"} == RAY


def test_one_policy_per_watched_namespace(helm: Helm) -> None:
    namespaced = {"rbac": {"scope": "namespaced", "namespaces": ["team-a", "team-b"]}}
    assert sorted(policies(render(helm, namespaced))) == ["team-a", "team-b"]
    listed = {"networkPolicy": {"namespaces": ["pipelines", "vp-system"]}}
    assert sorted(policies(render(helm, listed))) == ["pipelines", "vp-system"]


def test_off(helm: Helm) -> None:
    assert find(render(helm, {"networkPolicy": {"enabled": False}}), "NetworkPolicy") == []


def test_kuberay_rule_and_extra_ingress_from_values(helm: Helm) -> None:
    metrics: dict[str, Any] = {
        "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        "ports": [{"port": 8080}],
    }
    values = {
        "networkPolicy": {
            "dashboardPort": 18265,
            "kuberay": {"enabled": False},
            "extraIngress": [metrics],
        }
    }
    (policy,) = policies(render(helm, values)).values()
    _among_ray, submitter, extra = policy["spec"]["ingress"]
    assert submitter["ports"] == [{"port": 18265, "protocol": "TCP"}]
    assert extra == metrics


@pytest.mark.parametrize(
    "values",
    [
        {"networkPolicy": {"dashboardPort": 0}},
        {"networkPolicy": {"namespaces": ["Not_A_Namespace"]}},
        {"networkPolicy": {"kuberay": {"namespace": "Ray System"}}},
        {"networkPolicy": {"unknown": True}},
        {"operator": {"podStartTimeoutSeconds": -1}},
    ],
)
def test_schema_refuses_bad_values(helm: Helm, values: dict[str, Any]) -> None:
    res = helm.template(values, check=False)
    assert res.returncode != 0 and "values don't meet the specifications" in res.stderr


def test_operator_reads_pods_and_nothing_more(helm: Helm) -> None:
    for values, kind in (
        ({}, "ClusterRole"),
        ({"rbac": {"scope": "namespaced", "namespaces": ["team-a"]}}, "Role"),
    ):
        role = only(render(helm, values), kind, "vp-vectorpipe-operator")
        rules = [r for r in role["rules"] if "pods" in r["resources"]]
        assert rules == [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
        ]


def test_stuck_pod_grace_reaches_the_operator(helm: Helm) -> None:
    for values, seconds in (({}, "300"), ({"operator": {"podStartTimeoutSeconds": 60}}, "60")):
        deployment = only(render(helm, values), "Deployment", "vp-vectorpipe-operator")
        env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
        assert env["VECTORPIPE_POD_START_TIMEOUT"] == seconds
