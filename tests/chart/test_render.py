"""The chart without a cluster: `helm lint`, what `helm template` renders, what the schema refuses.

These run the pinned helm only (no API server). They check the rendered
objects for the properties the chart promises (one replica, Recreate, probes
on Kopf's real /healthz port, the hardened security contexts, the /tmp
emptyDir, images defaulting to the appVersion, RBAC without wildcards and
without a Secret read beyond the named token Secret), both RBAC scopes, and
that values.schema.json and the templates refuse bad values with a message
that names the problem. The Argo CD Applications must point at things that
exist in the chart.
"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import (
    CHART,
    REPO,
    Helm,
    Obj,
    container,
    find,
    only,
    render,
    values_args,
)
from tests.support.controlplane import Toolchain


@pytest.fixture(scope="module")
def helm(k8s_toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(k8s_toolchain, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[Obj]:
    return render(helm)


NAMESPACED = {"rbac": {"scope": "namespaced", "namespaces": ["team-a", "team-b"]}}


def test_chart_and_app_version_follow_pyproject() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["apiVersion"] == "v2"
    assert (chart["version"], chart["appVersion"]) == (version, version)


@pytest.mark.parametrize(
    "flags",
    [[], ["--strict"], ["--strict", *values_args(NAMESPACED)]],
    ids=["lint", "strict", "strict-namespaced"],
)
def test_helm_lint(helm: Helm, flags: list[str]) -> None:
    res = helm.run("lint", str(CHART), *flags)
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout
    assert "[WARNING]" not in res.stdout and "[ERROR]" not in res.stdout


# Static files in crds/ that hack/gen_crds.py does not write: Kopf's peering CRDs.
STATIC_CRDS = ["kopf.dev_clusterkopfpeerings.yaml", "kopf.dev_kopfpeerings.yaml"]


def _gen_crds() -> Any:
    spec = importlib.util.spec_from_file_location("gen_crds", REPO / "hack" / "gen_crds.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_crds_come_from_the_generated_folder(helm: Helm) -> None:
    objs = render(helm, extra=["--include-crds"])
    crds = sorted(o["metadata"]["name"] for o in find(objs, "CustomResourceDefinition"))
    assert crds == [
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
        "slurmjobs.vectorpipe.io",
        "vectorpipelines.vectorpipe.io",
    ]
    # Every file in crds/ is either written by hack/gen_crds.py (so its --check covers it)
    # or one of the known static ones, which carry no generated header: a renamed or
    # leftover generated CRD cannot sit there unchecked.
    gen = _gen_crds()
    generated = sorted(path.name for path in gen.outputs())
    assert generated == ["vectorpipe.io_slurmjobs.yaml", "vectorpipe.io_vectorpipelines.yaml"]
    files = sorted(path.name for path in (CHART / "crds").iterdir())
    assert files == sorted(generated + STATIC_CRDS)
    for name in STATIC_CRDS:
        assert not (CHART / "crds" / name).read_text().startswith(gen.HEADER), name
        assert name.startswith("kopf.dev_")
    # The only copy is crds/; none hides in templates/.
    assert not list((CHART / "templates").rglob("*CustomResourceDefinition*"))
    for path in (CHART / "templates").rglob("*"):
        if path.is_file():
            assert "kind: CustomResourceDefinition" not in path.read_text(), path


@pytest.mark.parametrize("component", ["operator", "slurm-bridge"])
def test_deployment_is_one_hardened_replica(default: list[Obj], component: str) -> None:
    dep = only(default, "Deployment", f"vp-vectorpipe-{component}")
    spec = dep["spec"]
    # Standalone by default: one replica, never two at once.
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert not [a for a in container(dep)["args"] if a.startswith("--peering")]
    assert "POD_ID" not in {e["name"] for e in container(dep)["env"]}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == f"vp-vectorpipe-{component}"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(dep)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    image = "vectorpipe/operator" if component == "operator" else "vectorpipe/slurm-bridge"
    assert c["image"] == f"{image}:0.1.0"
    # Probes hit the port Kopf's --liveness endpoint listens on.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert "--metrics-port=9090" in c["args"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    (mount,) = c["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    (vol,) = pod["volumes"]
    assert vol["name"] == mount["name"] and "emptyDir" in vol
    assert "--all-namespaces" in c["args"]


def test_bridge_flags_come_from_values(helm: Helm) -> None:
    values = {
        "slurmBridge": {
            "pollInterval": 2.5,
            "slurmTimeout": 7,
            "jobEnv": {"OMP_NUM_THREADS": "1"},
            "defaultWorkdir": "/fsx/vectorpipe",
            "logLevel": "verbose",
        }
    }
    args = container(only(render(helm, values), "Deployment", "vp-vectorpipe-slurm-bridge"))["args"]
    for flag in (
        "--poll-interval=2.5",
        "--slurm-timeout=7",
        "--job-env=OMP_NUM_THREADS=1",
        "--default-workdir=/fsx/vectorpipe",
        "--verbose",
    ):
        assert flag in args, (flag, args)


def test_images_irsa_and_labels_from_values(helm: Helm) -> None:
    arn = "arn:aws:iam::111122223333:role/vectorpipe-operator"
    digest = "sha256:" + "a" * 64
    objs = render(
        helm,
        {
            "operator": {
                "image": {"repository": "localhost/vectorpipe/operator", "tag": "dev"},
                "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": arn}},
            },
            "slurmBridge": {"image": {"repository": "r.example/bridge", "digest": digest}},
            "commonLabels": {"team": "genomics"},
        },
    )
    assert container(only(objs, "Deployment", "vp-vectorpipe-operator"))["image"] == (
        "localhost/vectorpipe/operator:dev"
    )
    assert container(only(objs, "Deployment", "vp-vectorpipe-slurm-bridge"))["image"] == (
        f"r.example/bridge@{digest}"
    )
    sa = only(objs, "ServiceAccount", "vp-vectorpipe-operator")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": arn}
    assert all(o["metadata"]["labels"]["team"] == "genomics" for o in objs)


def _rules(objs: list[Obj]) -> list[dict[str, Any]]:
    return [r for o in objs if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]


@pytest.mark.parametrize("values", [{}, NAMESPACED], ids=["cluster", "namespaced"])
def test_rbac_has_no_wildcards_and_no_broad_secret_read(helm: Helm, values: dict[str, Any]) -> None:
    rules = _rules(render(helm, values))
    assert rules
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), rule
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"] and rule["resourceNames"] == ["slurm-jwt"], rule
    assert not any(r.get("nonResourceURLs") for r in rules)


def test_cluster_scope_renders_cluster_roles_only(default: list[Obj]) -> None:
    assert not find(default, "Role") and not find(default, "RoleBinding")
    names = sorted(o["metadata"]["name"] for o in find(default, "ClusterRole"))
    assert names == [
        "vp-vectorpipe-editor",
        "vp-vectorpipe-operator",
        "vp-vectorpipe-operator-scanning",
        "vp-vectorpipe-slurm-bridge",
        "vp-vectorpipe-slurm-bridge-scanning",
        "vp-vectorpipe-viewer",
    ]
    # Standalone by default: no peering objects, no peering rules.
    assert not find(default, "ClusterKopfPeering") and not find(default, "KopfPeering")
    assert not [r for r in _rules(default) if "kopf.dev" in r["apiGroups"]]
    scanning = only(default, "ClusterRole", "vp-vectorpipe-operator-scanning")["rules"]
    # Watching every namespace, Kopf never lists namespaces.
    assert [r["resources"] for r in scanning] == [["customresourcedefinitions"]]


def test_namespaced_scope_renders_a_role_per_namespace(helm: Helm) -> None:
    objs = render(helm, NAMESPACED)
    for component in ("operator", "slurm-bridge"):
        name = f"vp-vectorpipe-{component}"
        roles = find(objs, "Role", name)
        assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
        bindings = find(objs, "RoleBinding", name)
        assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
        for b in bindings:
            assert b["subjects"] == [
                {"kind": "ServiceAccount", "name": name, "namespace": "vp-system"}
            ]
        assert not find(objs, "ClusterRole", name)
        scanning = only(objs, "ClusterRole", f"{name}-scanning")["rules"]
        assert [r["resources"] for r in scanning] == [["customresourcedefinitions"], ["namespaces"]]
        assert all(r["verbs"] == ["list", "watch"] for r in scanning)
        args = container(only(objs, "Deployment", name))["args"]
        assert [a for a in args if a.startswith("--namespace")] == [
            "--namespace=team-a",
            "--namespace=team-b",
        ]
        assert "--all-namespaces" not in args


def test_token_secret_created_only_on_request(helm: Helm, default: list[Obj]) -> None:
    assert not find(default, "Secret")
    values = {
        **NAMESPACED,
        "slurm": {
            "token": {"create": True, "value": "eyJ.jwt", "secretName": "hpc-jwt", "key": "jwt"},
            "caBundle": {"secretName": "hpc-ca"},
        },
    }
    objs = render(helm, values)
    secrets = find(objs, "Secret", "hpc-jwt")
    assert sorted(s["metadata"]["namespace"] for s in secrets) == ["team-a", "team-b"]
    assert all(s["stringData"] == {"jwt": "eyJ.jwt"} for s in secrets)
    (rule,) = [r for r in _rules(objs) if "secrets" in r["resources"]][:1]
    assert rule["resourceNames"] == ["hpc-jwt", "hpc-ca"]


def test_metrics_services_and_optional_service_monitor(helm: Helm, default: list[Obj]) -> None:
    assert not find(default, "ServiceMonitor")
    for component in ("operator", "slurm-bridge"):
        svc = only(default, "Service", f"vp-vectorpipe-{component}-metrics")
        assert svc["spec"]["ports"] == [
            {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
        ]
        assert svc["spec"]["selector"]["app.kubernetes.io/component"] == component
    objs = render(
        helm, {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}}
    )
    sm = only(objs, "ServiceMonitor", "vp-vectorpipe")
    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["selector"]["matchLabels"]["vectorpipe.io/metrics"] == "true"


def test_components_can_be_turned_off(helm: Helm) -> None:
    objs = render(helm, {"slurmBridge": {"enabled": False}, "tests": {"enabled": False}})
    assert not [o for o in objs if "slurm-bridge" in o["metadata"]["name"]]
    assert not find(objs, "Pod")
    assert find(objs, "Deployment", "vp-vectorpipe-operator")


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"rbac": {"scope": "everything"}}, "at '/rbac/scope': value must be one of 'cluster', 'namespaced'"),
        ({"rbac": {"scope": "namespaced"}}, "at '/rbac/namespaces': minItems: got 0, want 1"),
        ({"rbac": {"scope": "namespaced", "namespaces": ["Team_A"]}}, "at '/rbac/namespaces/0': 'Team_A' does not match pattern"),
        ({"operator": {"image": {"pullPolicy": "Sometimes"}}}, "at '/operator/image/pullPolicy': value must be one of"),
        ({"operator": {"image": {"digest": "sha256:abc"}}}, "at '/operator/image/digest': 'sha256:abc' does not match pattern"),
        ({"operator": {"metricsPort": 70000}}, "at '/operator/metricsPort': maximum"),
        ({"operator": {"logFormat": "xml"}}, "at '/operator/logFormat': value must be one of 'plain', 'full', 'json'"),
        ({"operator": {"replica": 2}}, "additional properties 'replica' not allowed"),
        ({"operator": {"replicas": 2}}, "at '/operator/peering/enabled': value must be true"),
        ({"slurmBridge": {"replicas": 3, "peering": {"enabled": False}}}, "at '/slurmBridge/peering/enabled': value must be true"),
        ({"operator": {"replicas": 0}}, "at '/operator/replicas': minimum"),
        ({"operator": {"peering": {"enabled": True, "name": "Kopf_Peering"}}}, "/operator/peering/name"),
        ({"rbac": {"userRoles": "yes"}}, "at '/rbac/userRoles': got string, want boolean"),
        ({"slurmBridge": {"pollInterval": 0}}, "at '/slurmBridge/pollInterval': exclusiveMinimum"),
        ({"slurmBridge": {"resources": {"limits": {"memory": "lots"}}}}, "/slurmBridge/resources/limits/memory"),
        ({"slurm": {"endpoint": "ftp://head:8082"}}, "at '/slurm/endpoint': 'ftp://head:8082' does not match pattern"),
        ({"slurm": {"token": {"create": True}}}, "at '/slurm/token/value': minLength: got 0, want 1"),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "at '/metrics/serviceMonitor/interval': 'often' does not match pattern"),
        ({"bogus": 1}, "additional properties 'bogus' not allowed"),
    ],
    ids=[
        "scope-enum", "namespaced-needs-namespaces", "namespace-pattern", "pull-policy-enum",
        "digest-pattern", "port-maximum", "log-format-enum", "unknown-operator-key",
        "replicas-need-peering", "bridge-replicas-need-peering", "replicas-minimum",
        "peering-name-pattern", "user-roles-boolean",
        "poll-interval-minimum", "quantity-pattern", "endpoint-scheme", "token-value-required",
        "interval-pattern", "unknown-top-level-key",
    ],
)  # fmt: skip
def test_schema_rejects_bad_values(helm: Helm, values: dict[str, Any], error: str) -> None:
    res = helm.template(values, check=False)
    assert res.returncode != 0, f"accepted: {values}"
    assert "values don't meet the specifications of the schema" in res.stderr
    assert error in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"operator": {"metricsPort": 8080}}, "healthPort and metricsPort must differ"),
        (
            {"operator": {"serviceAccount": {"create": False}}},
            "operator.serviceAccount.name is required when serviceAccount.create is false",
        ),
        (
            {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
    ],
    ids=["same-port", "no-sa-name", "monitor-without-service"],
)
def test_templates_refuse_inconsistent_values(
    helm: Helm, values: dict[str, Any], error: str
) -> None:
    res = helm.template(values, check=False)
    assert res.returncode != 0 and error in res.stderr, res.stderr


def test_argocd_applications_point_at_the_chart(helm: Helm) -> None:
    for name in ("application.yaml", "applicationset.yaml"):
        app = yaml.safe_load((REPO / "charts" / "argocd" / name).read_text())
        spec = app["spec"].get("template", {}).get("spec") or app["spec"]
        source = spec["source"]
        assert (REPO / source["path"]) == CHART
        assert (CHART / source["helm"]["valueFiles"][0]).is_file()
        assert source["helm"]["releaseName"] == "vectorpipe"
        assert spec["destination"]["namespace"] == "vectorpipe-system"
    objs = render(helm, release="vectorpipe", namespace="vectorpipe-system")
    # Release name "vectorpipe" gives unprefixed names.
    assert find(objs, "Deployment", "vectorpipe-operator")
    assert find(objs, "Deployment", "vectorpipe-slurm-bridge")


def test_values_file_documents_every_schema_key() -> None:
    """Every key the schema knows is present in values.yaml (nothing hidden)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(s: dict[str, Any], v: Any, path: str) -> list[str]:
        missing = []
        for key, sub in s.get("properties", {}).items():
            if key in ("global", "requests", "limits"):
                continue  # Helm's own / Kubernetes' free-form resource lists
            if not isinstance(v, dict) or key not in v:
                missing.append(f"{path}.{key}")
            elif sub.get("type") == "object" and sub.get("additionalProperties") is False:
                missing += walk(sub, v[key], f"{path}.{key}")
        return missing

    assert walk(schema, values, "") == []


# -- Kopf peering and replicas ------------------------------------------------------------------
PEERED = {
    "operator": {"replicas": 2, "peering": {"enabled": True}},
    "slurmBridge": {"replicas": 2, "peering": {"enabled": True}},
}


def _peering_rules(objs: list[Obj], kind: str, name: str) -> list[dict[str, Any]]:
    return [r for o in find(objs, kind, name) for r in o["rules"] if "kopf.dev" in r["apiGroups"]]


@pytest.mark.parametrize(
    "values", [PEERED, {**PEERED, **NAMESPACED}], ids=["cluster", "namespaced"]
)
def test_helm_lint_with_peering(helm: Helm, values: dict[str, Any]) -> None:
    res = helm.run("lint", str(CHART), "--strict", *values_args(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout
    assert "[WARNING]" not in res.stdout and "[ERROR]" not in res.stdout


def test_peering_in_cluster_scope(helm: Helm) -> None:
    objs = render(helm, PEERED)
    for component in ("operator", "slurm-bridge"):
        name = f"vp-vectorpipe-{component}"
        dep = only(objs, "Deployment", name)
        assert dep["spec"]["replicas"] == 2
        # A new pod comes up (and stands by, or takes over) before an old one goes.
        assert dep["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        c = container(dep)
        # Each process gets the peering name; its priority is random (the controllers'
        # default with --peering), so two replicas never tie and freeze each other.
        assert f"--peering={name}" in c["args"]
        assert not [a for a in c["args"] if a.startswith("--priority")]
        env = {e["name"]: e for e in c["env"]}
        assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        # The peering object, one per component, cluster-scoped as the processes watch all.
        peering = only(objs, "ClusterKopfPeering", name)
        assert peering["apiVersion"] == "kopf.dev/v1"
        assert "namespace" not in peering["metadata"]
        assert peering["metadata"]["labels"]["app.kubernetes.io/component"] == component
        # RBAC: list/watch the kind, get/patch only the own object.
        assert _peering_rules(objs, "ClusterRole", name) == [
            {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["list", "watch"]},
            {
                "apiGroups": ["kopf.dev"],
                "resources": ["clusterkopfpeerings"],
                "resourceNames": [name],
                "verbs": ["get", "patch"],
            },
        ]  # fmt: skip
    assert not find(objs, "KopfPeering")


def test_peering_in_namespaced_scope(helm: Helm) -> None:
    objs = render(helm, {**PEERED, **NAMESPACED})
    assert not find(objs, "ClusterKopfPeering")
    for component in ("operator", "slurm-bridge"):
        name = f"vp-vectorpipe-{component}"
        peerings = find(objs, "KopfPeering", name)
        assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
        roles = find(objs, "Role", name)
        assert len(roles) == 2
        for role in roles:
            rules = [r for r in role["rules"] if "kopf.dev" in r["apiGroups"]]
            assert [r["resources"] for r in rules] == [["kopfpeerings"], ["kopfpeerings"]]
            assert rules[1]["resourceNames"] == [name]
        assert not _peering_rules(objs, "ClusterRole", f"{name}-scanning")


def test_peering_of_one_component_only_and_a_custom_name(helm: Helm) -> None:
    objs = render(helm, {"operator": {"peering": {"enabled": True, "name": "vp-ha"}}})
    op = only(objs, "Deployment", "vp-vectorpipe-operator")
    assert op["spec"]["replicas"] == 1
    assert "--peering=vp-ha" in container(op)["args"]
    assert [p["metadata"]["name"] for p in find(objs, "ClusterKopfPeering")] == ["vp-ha"]
    bridge = only(objs, "Deployment", "vp-vectorpipe-slurm-bridge")
    assert bridge["spec"]["strategy"] == {"type": "Recreate"}
    assert not [a for a in container(bridge)["args"] if a.startswith("--peering")]
    assert not _peering_rules(objs, "ClusterRole", "vp-vectorpipe-slurm-bridge")
    (rule,) = [
        r
        for r in _peering_rules(objs, "ClusterRole", "vp-vectorpipe-operator")
        if "resourceNames" in r
    ]
    assert rule["resourceNames"] == ["vp-ha"]


@pytest.mark.parametrize(
    ("values", "extra", "error"),
    [
        (
            {
                "operator": {"peering": {"enabled": True, "name": "vp"}},
                "slurmBridge": {"peering": {"enabled": True, "name": "vp"}},
            },
            [],
            'operator and slurm-bridge need different peering names (both are "vp")',
        ),
        # values.schema.json refuses replicas > 1 without peering; so does the template,
        # for whoever skips the schema.
        (
            {"operator": {"replicas": 2}},
            ["--skip-schema-validation"],
            "operator.replicas > 1 needs operator.peering.enabled",
        ),
        (
            {"slurmBridge": {"replicas": 2}},
            ["--skip-schema-validation"],
            "slurmBridge.replicas > 1 needs slurmBridge.peering.enabled",
        ),
    ],
    ids=["same-peering-name", "operator-replicas-template", "bridge-replicas-template"],
)
def test_templates_refuse_unsafe_peering(
    helm: Helm, values: dict[str, Any], extra: list[str], error: str
) -> None:
    res = helm.template(values, extra=extra, check=False)
    assert res.returncode != 0 and error in res.stderr, res.stderr


# -- ClusterRoles for people --------------------------------------------------------------------
def test_user_roles_aggregate_into_the_builtin_roles(default: list[Obj]) -> None:
    editor = only(default, "ClusterRole", "vp-vectorpipe-editor")
    labels = editor["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in labels
    assert editor["rules"] == [
        {
            "apiGroups": ["vectorpipe.io"],
            "resources": ["vectorpipelines", "slurmjobs"],
            "verbs": ["create", "update", "patch", "delete", "get", "list", "watch"],
        },
        {
            "apiGroups": ["vectorpipe.io"],
            "resources": ["vectorpipelines/status", "slurmjobs/status"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    viewer = only(default, "ClusterRole", "vp-vectorpipe-viewer")
    labels = viewer["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert not {"rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-admin"} & set(labels)  # fmt: skip
    (rule,) = viewer["rules"]
    assert rule["verbs"] == ["get", "list", "watch"]
    assert sorted(rule["resources"]) == [
        "slurmjobs", "slurmjobs/status", "vectorpipelines", "vectorpipelines/status",
    ]  # fmt: skip
    # Bound to nobody: the built-in roles carry them wherever those are bound.
    for binding in find(default, "ClusterRoleBinding") + find(default, "RoleBinding"):
        assert binding["roleRef"]["name"] not in ("vp-vectorpipe-editor", "vp-vectorpipe-viewer")


@pytest.mark.parametrize(
    "values", [{"rbac": {"userRoles": False}}, {"rbac": {"create": False}}], ids=["off", "no-rbac"]
)
def test_user_roles_can_be_turned_off(helm: Helm, values: dict[str, Any]) -> None:
    names = {o["metadata"]["name"] for o in find(render(helm, values), "ClusterRole")}
    assert not names & {"vp-vectorpipe-editor", "vp-vectorpipe-viewer"}


def test_user_roles_in_namespaced_scope_too(helm: Helm) -> None:
    objs = render(helm, NAMESPACED)
    assert find(objs, "ClusterRole", "vp-vectorpipe-editor")
    assert find(objs, "ClusterRole", "vp-vectorpipe-viewer")


def test_argocd_release_name_gives_the_documented_role_names(helm: Helm) -> None:
    objs = render(helm, release="vectorpipe", namespace="vectorpipe-system")
    names = {o["metadata"]["name"] for o in find(objs, "ClusterRole")}
    assert {"vectorpipe-editor", "vectorpipe-viewer"} <= names


def test_kopf_peering_crds_are_the_ones_the_pinned_kopf_uses() -> None:
    """The chart's static peering CRDs are the resources Kopf's own selectors match."""
    import kopf
    from kopf._cogs.structs import references

    wanted = {
        references.CLUSTER_PEERINGS_K: False,  # selector -> namespaced
        references.NAMESPACED_PEERINGS_K: True,
    }
    matched = []
    for path in sorted((CHART / "crds").glob("kopf.dev_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        (version,) = crd["spec"]["versions"]
        names = crd["spec"]["names"]
        resource = kopf.Resource(
            group=crd["spec"]["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            singular=names["singular"],
            namespaced=crd["spec"]["scope"] == "Namespaced",
        )
        (selector,) = [s for s in wanted if s.check(resource)]
        assert resource.namespaced is wanted[selector], path.name
        matched.append(selector)
        # Kopf merge-patches its keep-alives into status: kept (preserved), and on the
        # main resource (no status subresource), as Kopf's own peering.yaml has it.
        assert "subresources" not in version
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert sorted(map(str, matched)) == sorted(map(str, wanted))
