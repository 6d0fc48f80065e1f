"""The chart on the real kube-apiserver: server-side validation, install/upgrade/uninstall, RBAC.

What `helm template` renders is sent through `kubectl apply --dry-run=server`
(the API server's own schema validation and admission, not a copy of it), in
both RBAC scopes. A release is installed, upgraded with a changed value and
uninstalled, and the objects are looked at after each step (no kubelet runs
here, so the pods never start: the test asserts the objects, not the pods).
The RBAC the chart grants is checked against the real authorizer, as the
chart's ServiceAccounts: every verb the operator and the slurm-bridge use is
allowed, and a list of broader things is denied. The full lists go in one
batch of SubjectAccessReviews; `kubectl auth can-i --as=...` is asked a sample
of the same questions and must agree.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tests.chart.chartlib import CHART, Helm, Obj, find, hook_script, parse, values_args
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.k8s


@dataclass(frozen=True)
class Release:
    """An installed release: its name, namespace and the helm/kubectl to talk to it."""

    name: str
    namespace: str
    helm: Helm
    k8s: ControlPlane

    @property
    def fullname(self) -> str:
        return f"{self.name}-vectorpipe"

    def sa(self, component: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}-{component}"

    def helm_cmd(self, *args: str, check: bool = True) -> str:
        res = self.helm.run(
            *args, f"--kubeconfig={self.k8s.kubeconfig}", "-n", self.namespace, check=check
        )
        return res.stdout + res.stderr

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        ns = ["-n", namespace or self.namespace] if kind not in CLUSTER_KINDS else []
        res = self.k8s.kubectl("get", kind, name, *ns, "-o", "json", check=False)
        if res.returncode != 0:
            assert "NotFound" in res.stderr, res.stderr
            return None
        out: Obj = json.loads(res.stdout)
        return out


CLUSTER_KINDS = ("clusterrole", "clusterrolebinding", "crd", "namespace")
# Kopf's peering CRDs: static files next to our generated CRDs in crds/.
PEERING_CRDS = sorted((CHART / "crds").glob("kopf.dev_*.yaml"))


def install(helm: Helm, k8s: ControlPlane, ns: str, values: dict[str, Any]) -> Release:
    rel = Release(f"vp-{uuid.uuid4().hex[:6]}", ns, helm, k8s)
    rel.helm_cmd("install", rel.name, str(CHART), *values_args(values))
    return rel


@pytest.fixture(scope="module")
def helm(k8s: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(k8s.toolchain, tmp_path_factory.mktemp("helm"))


@pytest.fixture
def other_namespace(k8s: ControlPlane) -> Iterator[str]:
    name = k8s.create_namespace("chart-other")
    yield name
    k8s.delete_namespace(name)


def dry_run(k8s: ControlPlane, manifests: str) -> list[str]:
    res = k8s.kubectl(
        "apply", "--dry-run=server", "--server-side", "--field-manager=chart-test",
        "-o", "name", "-f", "-", input=manifests,
    )  # fmt: skip
    return sorted(res.stdout.split())


# -- server-side validation ---------------------------------------------------------------------
def test_default_render_is_valid_for_the_api_server(
    helm: Helm, k8s: ControlPlane, namespace: str
) -> None:
    out = helm.template(release="vp-dry", namespace=namespace, extra=["--skip-tests"]).stdout
    # The Pod Security "restricted" profile: enforced on pods, warned about for Deployments.
    k8s.kubectl(
        "label", "namespace", namespace,
        "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted",
    )  # fmt: skip
    res = k8s.kubectl(
        "apply", "--dry-run=server", "--server-side", "--field-manager=chart-test",
        "-o", "name", "-f", "-", input=out,
    )  # fmt: skip
    assert "PodSecurity" not in res.stderr, res.stderr
    names = sorted(res.stdout.split())
    assert names == sorted(
        [
            "serviceaccount/vp-dry-vectorpipe-operator",
            "serviceaccount/vp-dry-vectorpipe-slurm-bridge",
            "clusterrole.rbac.authorization.k8s.io/vp-dry-vectorpipe-operator",
            "clusterrole.rbac.authorization.k8s.io/vp-dry-vectorpipe-operator-scanning",
            "clusterrole.rbac.authorization.k8s.io/vp-dry-vectorpipe-slurm-bridge",
            "clusterrole.rbac.authorization.k8s.io/vp-dry-vectorpipe-slurm-bridge-scanning",
            "clusterrole.rbac.authorization.k8s.io/vp-dry-vectorpipe-editor",
            "clusterrole.rbac.authorization.k8s.io/vp-dry-vectorpipe-viewer",
            "clusterrolebinding.rbac.authorization.k8s.io/vp-dry-vectorpipe-operator",
            "clusterrolebinding.rbac.authorization.k8s.io/vp-dry-vectorpipe-operator-scanning",
            "clusterrolebinding.rbac.authorization.k8s.io/vp-dry-vectorpipe-slurm-bridge",
            "clusterrolebinding.rbac.authorization.k8s.io/vp-dry-vectorpipe-slurm-bridge-scanning",
            "networkpolicy.networking.k8s.io/vp-dry-vectorpipe-ray",
            "service/vp-dry-vectorpipe-operator-metrics",
            "service/vp-dry-vectorpipe-slurm-bridge-metrics",
            "deployment.apps/vp-dry-vectorpipe-operator",
            "deployment.apps/vp-dry-vectorpipe-slurm-bridge",
        ]
    )
    # Both checks bite: a container allowed to escalate privileges draws the warning,
    # and a broken manifest is refused.
    lax = out.replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", 1)
    res = k8s.kubectl(
        "apply", "--dry-run=server", "--server-side", "-f", "-", input=lax, check=False
    )
    assert 'would violate PodSecurity "restricted:latest"' in res.stderr, res.stderr
    bad = out.replace("type: Recreate", "type: Sideways", 1)
    res = k8s.kubectl(
        "apply", "--dry-run=server", "--server-side", "-f", "-", input=bad, check=False
    )
    assert res.returncode != 0 and "Sideways" in res.stderr, res.stderr


def test_namespaced_render_with_token_secret_is_valid(
    helm: Helm, k8s: ControlPlane, namespace: str, other_namespace: str
) -> None:
    values = {
        "rbac": {"scope": "namespaced", "namespaces": [namespace, other_namespace]},
        "slurm": {"token": {"create": True, "value": "eyJhbGciOi.x.y"}},
    }
    out = helm.template(
        values, release="vp-dry", namespace=namespace, extra=["--skip-tests"]
    ).stdout
    names = dry_run(k8s, out)
    assert names.count("role.rbac.authorization.k8s.io/vp-dry-vectorpipe-operator") == 2
    assert names.count("rolebinding.rbac.authorization.k8s.io/vp-dry-vectorpipe-slurm-bridge") == 2
    assert names.count("secret/slurm-jwt") == 2
    # No ClusterRole for the controllers' namespaced rules; the only others are the
    # user roles, which are ClusterRoles by nature (aggregated into edit and view).
    cluster_roles = [n.rsplit("/", 1)[1] for n in names if n.startswith("clusterrole.")]
    assert sorted(r for r in cluster_roles if not r.endswith("-scanning")) == [
        "vp-dry-vectorpipe-editor",
        "vp-dry-vectorpipe-viewer",
    ]


def test_peered_render_is_valid_for_the_api_server(
    helm: Helm, k8s: ControlPlane, namespace: str, other_namespace: str
) -> None:
    """Two replicas of each controller with Kopf peering, in both scopes: the peering
    objects are valid against Kopf's CRDs as the chart ships them."""
    k8s.apply_crds(PEERING_CRDS)
    peered = {
        "operator": {"replicas": 2, "peering": {"enabled": True}},
        "slurmBridge": {"replicas": 2, "peering": {"enabled": True}},
    }
    out = helm.template(peered, release="vp-dry", namespace=namespace, extra=["--skip-tests"])
    names = dry_run(k8s, out.stdout)
    assert "clusterkopfpeering.kopf.dev/vp-dry-vectorpipe-operator" in names
    assert "clusterkopfpeering.kopf.dev/vp-dry-vectorpipe-slurm-bridge" in names
    scoped = {**peered, "rbac": {"scope": "namespaced", "namespaces": [namespace, other_namespace]}}
    out = helm.template(scoped, release="vp-dry", namespace=namespace, extra=["--skip-tests"])
    names = dry_run(k8s, out.stdout)
    assert names.count("kopfpeering.kopf.dev/vp-dry-vectorpipe-operator") == 2
    assert not [n for n in names if n.startswith("clusterkopfpeering")]


# -- install / upgrade / uninstall ---------------------------------------------------------------
def test_install_upgrade_uninstall(helm: Helm, k8s: ControlPlane, namespace: str) -> None:
    arn = "arn:aws:iam::111122223333:role/vectorpipe-etl"
    rel = install(
        helm,
        k8s,
        namespace,
        {"operator": {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": arn}}}},
    )
    status = json.loads(rel.helm_cmd("status", rel.name, "-o", "json"))
    assert status["info"]["status"] == "deployed" and status["version"] == 1
    # NOTES name the prerequisite and what a pipeline spec must reference.
    notes = status["info"]["notes"]
    assert "`kuberay-operator` chart, version 1.5.0" in notes
    assert "tokenSecretRef: {name: slurm-jwt, key: token}" in notes
    assert f"helm test {rel.name} -n {namespace}" in notes

    full = rel.fullname
    op = rel.get("deployment", f"{full}-operator")
    bridge = rel.get("deployment", f"{full}-slurm-bridge")
    assert op is not None and bridge is not None
    assert op["spec"]["strategy"]["type"] == "Recreate"
    sa = rel.get("serviceaccount", f"{full}-operator")
    assert sa is not None and sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == arn
    for name in (f"{full}-operator-metrics", f"{full}-slurm-bridge-metrics"):
        assert rel.get("service", name) is not None
    for kind in ("clusterrole", "clusterrolebinding"):
        assert rel.get(kind, f"{full}-operator") is not None
    for crd in ("vectorpipelines.vectorpipe.io", "slurmjobs.vectorpipe.io"):
        assert rel.get("crd", crd) is not None

    # The `helm test` Pod is admitted by the API server with the installed ServiceAccount,
    # under the enforced "restricted" Pod Security profile.
    k8s.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    rendered = parse(helm.template(release=rel.name, namespace=namespace).stdout)
    (pod,) = find(rendered, "Pod")
    res = k8s.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(pod)
    )
    assert f"pod/{full}-test created (server dry run)" in res.stdout
    assert "load_incluster_config" in hook_script(rendered)

    gen = op["metadata"]["generation"]
    rel.helm_cmd(
        "upgrade", rel.name, str(CHART), "--reuse-values",
        "--set", "operator.logLevel=verbose", "--set", "slurmBridge.pollInterval=2",
    )  # fmt: skip
    op2 = rel.get("deployment", f"{full}-operator")
    bridge2 = rel.get("deployment", f"{full}-slurm-bridge")
    assert op2 is not None and bridge2 is not None
    assert op2["metadata"]["generation"] == gen + 1
    assert "--verbose" in op2["spec"]["template"]["spec"]["containers"][0]["args"]
    bridge_args = bridge2["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--poll-interval=2" in bridge_args and "--poll-interval=5" not in bridge_args
    sa2 = rel.get("serviceaccount", f"{full}-operator")
    assert sa2 is not None and sa2["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == arn
    history = json.loads(rel.helm_cmd("history", rel.name, "-o", "json"))
    assert [h["status"] for h in history] == ["superseded", "deployed"]

    rel.helm_cmd("uninstall", rel.name, "--wait", "--timeout", "60s")
    for kind, name in (
        ("deployment", f"{full}-operator"),
        ("deployment", f"{full}-slurm-bridge"),
        ("serviceaccount", f"{full}-slurm-bridge"),
        ("service", f"{full}-operator-metrics"),
        ("clusterrole", f"{full}-operator"),
        ("clusterrolebinding", f"{full}-slurm-bridge-scanning"),
    ):
        assert rel.get(kind, name) is None, (kind, name)
    # CRDs outlive the release (helm never deletes crds/): pipelines are not lost.
    assert rel.get("crd", "vectorpipelines.vectorpipe.io") is not None


# -- RBAC against the real authorizer -------------------------------------------------------------
# (verb, resource, subresource or "") in a watched namespace.
OPERATOR_USES = [
    *[(v, "vectorpipelines.vectorpipe.io", "") for v in ("get", "list", "watch", "patch")],
    *[(v, "vectorpipelines.vectorpipe.io", "status") for v in ("get", "update", "patch")],
    ("update", "vectorpipelines.vectorpipe.io", "finalizers"),
    *[
        (v, r, "")
        for r in ("rayjobs.ray.io", "slurmjobs.vectorpipe.io")
        for v in ("get", "list", "watch", "create", "patch", "delete")
    ],
    ("get", "configmaps", ""),
    ("create", "configmaps", ""),
    # A new spec.runId, or a Ray pod that cannot start, ends a run by deleting its children.
    ("delete", "configmaps", ""),
    # Ray pods are watched and listed to tell a container that cannot start.
    *[(v, "pods", "") for v in ("get", "list", "watch")],
    *[(v, r, "") for r in ("events", "events.events.k8s.io") for v in ("create", "patch")],
    ("list", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", ""),
]
BRIDGE_USES = [
    *[(v, "slurmjobs.vectorpipe.io", "") for v in ("get", "list", "watch", "patch")],
    ("patch", "slurmjobs.vectorpipe.io", "status"),
    ("get", "secrets/slurm-jwt", ""),
    *[(v, r, "") for r in ("events", "events.events.k8s.io") for v in ("create", "patch")],
    ("list", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", ""),
]
BOTH_DENIED = [
    ("*", "*", ""),
    ("get", "secrets", ""),
    ("list", "secrets", ""),
    ("watch", "secrets", ""),
    ("get", "secrets/other-secret", ""),
    ("create", "pods", ""),
    ("create", "pods", "exec"),
    ("delete", "pods", ""),
    ("delete", "namespaces", ""),
    ("create", "namespaces", ""),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", ""),
    ("bind", "clusterroles.rbac.authorization.k8s.io", ""),
    ("escalate", "roles.rbac.authorization.k8s.io", ""),
    ("impersonate", "serviceaccounts", ""),
    ("create", "serviceaccounts", "token"),
    ("delete", "vectorpipelines.vectorpipe.io", ""),
    ("update", "configmaps", ""),
    ("list", "configmaps", ""),
    ("delete", "events", ""),
    ("get", "nodes", ""),
    ("patch", "deployments.apps", ""),
]
OPERATOR_DENIED = [*BOTH_DENIED, ("get", "secrets/slurm-jwt", "")]
BRIDGE_DENIED = [
    *BOTH_DENIED,
    ("create", "slurmjobs.vectorpipe.io", ""),
    ("update", "slurmjobs.vectorpipe.io", "status"),
    ("get", "vectorpipelines.vectorpipe.io", ""),
    ("create", "rayjobs.ray.io", ""),
    ("get", "configmaps", ""),
    ("delete", "rayjobs.ray.io", ""),
    ("delete", "slurmjobs.vectorpipe.io", ""),
    ("delete", "configmaps", ""),
    ("list", "pods", ""),
]
NAMESPACE_READS = [("list", "namespaces", ""), ("watch", "namespaces", "")]


def _attributes(check: tuple[str, str, str], namespace: str | None) -> dict[str, str]:
    """A check as SubjectAccessReview resourceAttributes, parsed the way kubectl parses it."""
    verb, resource, sub = check
    resource, _, name = resource.partition("/")
    resource, _, group = resource.partition(".")
    if resource == "*":
        group = "*"
    attrs = {"verb": verb, "resource": resource, "group": group, "subresource": sub, "name": name}
    return {**attrs, "namespace": namespace or ""}


def reviews(
    k8s: ControlPlane, who: str, checks: list[tuple[str, str, str]], namespace: str | None
) -> dict[tuple[str, str, str], bool]:
    """The authorizer's answer to each check (namespace None: all namespaces), in one request.

    One SubjectAccessReview per check, for the ServiceAccount user with the
    groups the API server gives it; `kubectl auth can-i --as` asks the same
    question through impersonation, one process per check (cross-checked in
    `assert_rbac`).
    """
    sa_ns = who.split(":")[2]
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{sa_ns}", "system:authenticated"]
    items = [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": who,
                "groups": groups,
                "resourceAttributes": _attributes(c, namespace),
            },
        }
        for c in checks
    ]
    res = k8s.kubectl(
        "create", "-o", "json", "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
    )  # fmt: skip
    answers = [bool(r["status"].get("allowed")) for r in json_stream(res.stdout)]
    return dict(zip(checks, answers, strict=True))


def json_stream(text: str) -> list[Obj]:
    """kubectl create -o json prints one document per created item, back to back."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while pos < len(text.rstrip()):
        obj, end = decoder.raw_decode(text, pos)
        out.append(obj)
        pos = end + (len(text[end:]) - len(text[end:].lstrip()))
    return out


def can_i(k8s: ControlPlane, who: str, check: tuple[str, str, str], namespace: str | None) -> bool:
    verb, resource, sub = check
    args = ["auth", "can-i", verb, resource, f"--as={who}"]
    args += [f"--subresource={sub}"] if sub else []
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    res = k8s.kubectl(*args, check=False)
    assert res.stdout.strip() in ("yes", "no"), (check, res.stdout, res.stderr)
    return res.stdout.strip() == "yes"


def assert_rbac(
    k8s: ControlPlane,
    who: str,
    allowed: list[tuple[str, str, str]],
    denied: list[tuple[str, str, str]],
    namespace: str | None,
) -> None:
    answers = reviews(k8s, who, allowed + denied, namespace)
    missing = [c for c in allowed if not answers[c]]
    broader = [c for c in denied if answers[c]]
    assert (missing, broader) == ([], []), f"{who} in {namespace or 'all namespaces'}"
    # kubectl auth can-i (impersonation) agrees, on the first and last of each list.
    sample = [*allowed[:1], *allowed[-1:], *denied[:1], *denied[-1:]]
    with ThreadPoolExecutor(4) as pool:
        said = list(pool.map(lambda c: can_i(k8s, who, c, namespace), sample))
    assert said == [answers[c] for c in sample], list(zip(sample, said, strict=True))


def test_cluster_scope_rbac(helm: Helm, k8s: ControlPlane, namespace: str) -> None:
    rel = install(helm, k8s, namespace, {})
    try:
        op, bridge = rel.sa("operator"), rel.sa("slurm-bridge")
        elsewhere = "default"  # any namespace: cluster scope watches them all
        assert_rbac(k8s, op, OPERATOR_USES, [*OPERATOR_DENIED, *NAMESPACE_READS], elsewhere)
        assert_rbac(k8s, bridge, BRIDGE_USES, [*BRIDGE_DENIED, *NAMESPACE_READS], elsewhere)
        # Across all namespaces: the watches are allowed, reading Secrets is not.
        assert_rbac(
            k8s,
            op,
            [("list", "vectorpipelines.vectorpipe.io", ""), ("watch", "rayjobs.ray.io", "")],
            [("list", "secrets", ""), ("get", "secrets", "")],
            None,
        )
        assert_rbac(
            k8s,
            bridge,
            [("watch", "slurmjobs.vectorpipe.io", "")],
            [("list", "secrets", ""), ("get", "secrets", ""), ("watch", "secrets", "")],
            None,
        )
    finally:
        rel.helm_cmd("uninstall", rel.name, check=False)


def test_namespaced_scope_rbac(
    helm: Helm, k8s: ControlPlane, namespace: str, other_namespace: str
) -> None:
    watched = k8s.create_namespace("chart-watched")
    try:
        rel = install(
            helm, k8s, namespace, {"rbac": {"scope": "namespaced", "namespaces": [watched]}}
        )
        op, bridge = rel.sa("operator"), rel.sa("slurm-bridge")
        # Kopf resolves the namespace list, so it may read namespaces (names only).
        assert_rbac(k8s, op, OPERATOR_USES + NAMESPACE_READS, OPERATOR_DENIED, watched)
        assert_rbac(k8s, bridge, BRIDGE_USES + NAMESPACE_READS, BRIDGE_DENIED, watched)
        # Outside the watched namespace (the release's own one included): nothing namespaced.
        cluster_reads = [c for c in OPERATOR_USES if "customresourcedefinitions" in c[1]]
        for ns in (other_namespace, namespace):
            op_namespaced = [c for c in OPERATOR_USES if c not in cluster_reads]
            assert_rbac(k8s, op, cluster_reads, op_namespaced, ns)
            assert_rbac(k8s, bridge, [], [c for c in BRIDGE_USES if c not in cluster_reads], ns)
        assert_rbac(
            k8s,
            op,
            [],
            [("list", "vectorpipelines.vectorpipe.io", ""), ("list", "rayjobs.ray.io", "")],
            None,
        )
        rel.helm_cmd("uninstall", rel.name)
        assert rel.get("role", f"{rel.fullname}-operator", watched) is None
    finally:
        k8s.delete_namespace(watched)


# -- ClusterRoles for people, aggregated by the real kube-controller-manager ----------------------
def _pipeline_manifest(name: str) -> str:
    """The smallest VectorPipeline (examples/pipeline.yaml's spec) under another name."""
    body = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": name},
        "spec": {"input": {"uri": "/fsx/reads/"}, "output": {"uri": f"/fsx/runs/{name}/"}},
    }
    return json.dumps(body)


def _aggregated(k8s: ControlPlane, role: str, resource: str, verb: str) -> bool:
    """Whether the built-in ClusterRole `role` has a vectorpipe.io rule granting `verb` on `resource`."""
    res = k8s.kubectl("get", "clusterrole", role, "-o", "json")
    rules = json.loads(res.stdout).get("rules") or []
    return any(
        "vectorpipe.io" in r.get("apiGroups", [])
        and resource in r.get("resources", [])
        and verb in r.get("verbs", [])
        for r in rules
    )


def test_user_roles_aggregate_into_edit_admin_and_view(
    helm: Helm, k8s: ControlPlane, namespace: str, other_namespace: str
) -> None:
    """A person bound to the built-in `view` in a namespace reads pipelines there, one bound
    to `edit` creates and deletes them there; neither can touch another namespace."""
    rel = install(helm, k8s, namespace, {})
    team = k8s.create_namespace("chart-team")
    try:
        # The clusterrole-aggregation controller of the real kube-controller-manager copies
        # the chart's rules into the built-in roles; give it a bounded time.
        k8s.wait_for(
            "vectorpipe rules aggregated into edit, admin and view",
            lambda: (
                _aggregated(k8s, "edit", "vectorpipelines", "create")
                and _aggregated(k8s, "admin", "vectorpipelines", "delete")
                and _aggregated(k8s, "view", "vectorpipelines", "list")
                and _aggregated(k8s, "view", "slurmjobs", "watch")
            ),
            timeout=60,
        )
        assert not _aggregated(k8s, "view", "vectorpipelines", "create")
        viewer, editor = f"viewer-{uuid.uuid4().hex[:6]}", f"editor-{uuid.uuid4().hex[:6]}"
        for user, role in ((viewer, "view"), (editor, "edit")):
            k8s.kubectl(
                "create", "rolebinding", f"{user}-{role}", "-n", team,
                f"--clusterrole={role}", f"--user={user}",
            )  # fmt: skip

        def allowed(who: str, checks: list[tuple[str, str, str]], ns: str) -> dict[Any, bool]:
            items = [
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SubjectAccessReview",
                    "spec": {
                        "user": who,
                        "groups": ["system:authenticated"],
                        "resourceAttributes": _attributes(c, ns),
                    },
                }
                for c in checks
            ]
            res = k8s.kubectl(
                "create", "-o", "json", "-f", "-",
                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
            )  # fmt: skip
            answers = [bool(r["status"].get("allowed")) for r in json_stream(res.stdout)]
            return dict(zip(checks, answers, strict=True))

        reads = [
            (v, r, "")
            for r in ("vectorpipelines.vectorpipe.io", "slurmjobs.vectorpipe.io")
            for v in ("get", "list", "watch")
        ]
        writes = [
            (v, r, "")
            for r in ("vectorpipelines.vectorpipe.io", "slurmjobs.vectorpipe.io")
            for v in ("create", "update", "patch", "delete")
        ]
        status_writes = [
            (v, r, "status")
            for r in ("vectorpipelines.vectorpipe.io", "slurmjobs.vectorpipe.io")
            for v in ("update", "patch")
        ]
        # The team namespace: view reads, edit reads and writes; nobody writes status.
        assert allowed(viewer, reads + writes, team) == {c: c in reads for c in reads + writes}
        assert all(allowed(editor, reads + writes, team).values())
        for who in (viewer, editor):
            assert not any(allowed(who, status_writes, team).values()), who
            # Elsewhere (the release's namespace, any other): nothing at all.
            for ns in (namespace, other_namespace):
                assert not any(allowed(who, reads + writes, ns).values()), (who, ns)
        # kubectl auth can-i (impersonation) agrees.
        assert can_i(k8s, viewer, ("list", "vectorpipelines", ""), team)
        assert not can_i(k8s, viewer, ("create", "vectorpipelines", ""), team)
        assert can_i(k8s, editor, ("delete", "vectorpipelines", ""), team)
        assert not can_i(k8s, editor, ("get", "vectorpipelines", ""), other_namespace)

        # And for real, as each user through impersonation.
        def as_user(who: str, *args: str, manifest: str | None = None) -> Any:
            return k8s.kubectl(*args, f"--as={who}", input=manifest, check=False)

        created = as_user(
            editor, "create", "-n", team, "-f", "-", manifest=_pipeline_manifest("p1")
        )
        assert created.returncode == 0, created.stderr
        listed = as_user(viewer, "get", "vectorpipelines", "-n", team, "-o", "name")
        assert listed.returncode == 0 and "vectorpipeline.vectorpipe.io/p1" in listed.stdout
        got = as_user(viewer, "get", "vectorpipeline", "p1", "-n", team, "-o", "json")
        assert got.returncode == 0 and json.loads(got.stdout)["metadata"]["name"] == "p1"
        refused = as_user(
            viewer, "create", "-n", team, "-f", "-", manifest=_pipeline_manifest("p2")
        )
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
        refused = as_user(viewer, "delete", "vectorpipeline", "p1", "-n", team)
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
        for who in (viewer, editor):
            res = as_user(who, "get", "vectorpipelines", "-n", other_namespace)
            assert res.returncode != 0 and "forbidden" in res.stderr.lower(), (who, res.stderr)
        res = as_user(
            editor, "create", "-n", other_namespace, "-f", "-", manifest=_pipeline_manifest("p3")
        )
        assert res.returncode != 0 and "forbidden" in res.stderr.lower(), res.stderr
        deleted = as_user(editor, "delete", "vectorpipeline", "p1", "-n", team, "--wait=false")
        assert deleted.returncode == 0, deleted.stderr

        # Uninstalling takes the rules out of the built-in roles again (unless another
        # release in this shared cluster still ships them).
        rel.helm_cmd("uninstall", rel.name, "--wait", "--timeout", "60s")
        others = k8s.kubectl(
            "get", "clusterroles", "-l", "app.kubernetes.io/component=user-roles", "-o", "name"
        ).stdout.split()  # fmt: skip
        if not others:
            k8s.wait_for(
                "vectorpipe rules gone from edit and view",
                lambda: (
                    not _aggregated(k8s, "edit", "vectorpipelines", "create")
                    and not _aggregated(k8s, "view", "vectorpipelines", "list")
                ),
                timeout=60,
            )
    finally:
        rel.helm_cmd("uninstall", rel.name, check=False)
        k8s.delete_namespace(team)
