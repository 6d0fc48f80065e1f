"""The RayJob's pods under Pod Security `restricted`, and the RayJob features passed through.

`restricted_violations` checks a pod template (and the autoscaler sidecar,
which KubeRay builds from `autoscalerOptions`) against the rules of the
`restricted` profile that a spec can break; every pod KubeRay makes for a
pipeline is checked with it. The rest covers the submitter pod, autoscaling,
runtimeEnvYAML, deletionStrategy, the RayJob's labels and annotations and
activeDeadlineSeconds, and the model-level rules behind them.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from vectorpipe_api.pipeline import VectorPipelineSpec
from vectorpipe_operator import builders
from vectorpipe_operator.builders_ray import quantity, shm_size
from vectorpipe_operator.resources import LABEL_COMPONENT, LABEL_PIPELINE, Pipeline

UID = "0b5c3f8e-1111-2222-3333-444455556666"
RAY_UID = 1000
# Volume types `restricted` allows (Pod Security Standards, "Volume Types").
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod_spec: dict[str, Any], extra: list[dict[str, Any]]) -> list[str]:
    """What keeps a pod from Pod Security `restricted` (plus our uid/gid/read-only rules).

    `extra` are containers KubeRay adds, given as the container fields we
    control (for the autoscaler: its `autoscalerOptions`).
    """
    problems: list[str] = []
    psc = pod_spec.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        problems.append("pod: runAsNonRoot is not true")
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if psc.get(key) != RAY_UID:
            problems.append(f"pod: {key} is not {RAY_UID}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"pod: {field}")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']}: type {kinds}")
    containers = [
        *pod_spec.get("containers", []),
        *pod_spec.get("initContainers", []),
        *extra,
    ]
    if not containers:
        problems.append("pod: no containers")
    for c in containers:
        name = c.get("name", "<injected>")
        sc = c.get("securityContext")
        if not sc:
            problems.append(f"{name}: no securityContext")
            continue
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities do not drop ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"{name}: adds capabilities")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0:
            problems.append(f"{name}: may run as root")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
    return problems


def scratch_problems(pod_spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """Ray's writable places: /tmp (emptyDir), /dev/shm (memory emptyDir), HOME under /tmp."""
    problems = []
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = {m["mountPath"]: volumes.get(m["name"]) for m in container.get("volumeMounts", [])}
    if (mounts.get("/tmp") or {}).get("emptyDir") is None:
        problems.append("/tmp is not an emptyDir")
    shm = (mounts.get("/dev/shm") or {}).get("emptyDir") or {}
    if shm.get("medium") != "Memory" or not shm.get("sizeLimit"):
        problems.append("/dev/shm is not a sized memory emptyDir")
    home = {e["name"]: e.get("value") for e in container.get("env", [])}.get("HOME", "")
    if not home.startswith("/tmp"):
        problems.append(f"HOME {home!r} is not under /tmp")
    return problems


def pipeline(**ray: Any) -> Pipeline:
    body = {
        "metadata": {"name": "gut", "namespace": "team-a", "uid": UID},
        "spec": {"input": {"uri": "/fsx/in/"}, "output": {"uri": "/fsx/out/"}, "ray": ray},
    }
    return Pipeline.from_body(body)


def pods(rj: dict[str, Any]) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every pod template of a RayJob, with the containers KubeRay injects that we configure."""
    spec = rj["spec"]
    cluster = spec["rayClusterSpec"]
    injected = [cluster["autoscalerOptions"]] if cluster.get("enableInTreeAutoscaling") else []
    out = {"head": (cluster["headGroupSpec"]["template"], injected)}
    for group in cluster.get("workerGroupSpecs", []):
        out[group["groupName"]] = (group["template"], [])
    out["submitter"] = (spec["submitterPodTemplate"], [])
    return out


FULL = {
    "serviceAccountName": "vectorpipe-ray",
    "sharedFilesystem": {"claimName": "fsx"},
    "nodeSelector": {"pool": "ray"},
    "tolerations": [{"key": "ray", "operator": "Exists", "effect": "NoSchedule"}],
    "workers": {"replicas": 2, "minReplicas": 1, "maxReplicas": 6},
}


@pytest.mark.parametrize(
    "ray", [{}, {"workers": {"replicas": 0}}, FULL], ids=["min", "no-w", "full"]
)
def test_every_pod_and_container_is_restricted(ray: dict[str, Any]) -> None:
    rj = builders.build_rayjob(pipeline(**ray))
    found = pods(rj)
    assert "submitter" in found and "head" in found
    for name, (template, injected) in found.items():
        pod = template["spec"]
        assert restricted_violations(pod, injected) == [], name
        for c in pod["containers"]:
            assert scratch_problems(pod, c) == [], (name, c["name"])
    # The autoscaler sidecar shares the head's /tmp and HOME.
    cluster = rj["spec"]["rayClusterSpec"]
    if cluster.get("enableInTreeAutoscaling"):
        opts = cluster["autoscalerOptions"]
        head_volumes = {v["name"] for v in cluster["headGroupSpec"]["template"]["spec"]["volumes"]}
        assert {m["name"] for m in opts["volumeMounts"]} <= head_volumes
        assert {"name": "HOME", "value": "/tmp"} in opts["env"]


def test_the_checker_catches_what_restricted_forbids() -> None:
    rj = builders.build_rayjob(pipeline())
    pod = rj["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    broken = {
        **pod,
        "securityContext": {},
        "volumes": [*pod["volumes"], {"name": "h", "hostPath": {}}],
    }
    c = dict(pod["containers"][0])
    c["securityContext"] = {**c["securityContext"], "allowPrivilegeEscalation": True}
    broken["containers"] = [c]
    problems = restricted_violations(broken, [{"securityContext": {}}])
    assert "pod: runAsNonRoot is not true" in problems
    assert "ray-head: allowPrivilegeEscalation is not false" in problems
    assert "ray-head: no RuntimeDefault seccomp profile" in problems
    assert "<injected>: no securityContext" in problems
    assert any(p.startswith("volume h:") for p in problems)


def test_shared_memory_defaults_to_a_third_of_memory_and_can_be_set() -> None:
    p = pipeline(
        head={"memory": "3Gi"}, workers={"memory": "32Gi", "sharedMemory": "4Gi"}, submitter={}
    )
    found = pods(builders.build_rayjob(p))

    def shm(name: str) -> str:
        (v,) = [v for v in found[name][0]["spec"]["volumes"] if v["name"] == "dshm"]
        return str(v["emptyDir"]["sizeLimit"])

    assert shm("head") == "1024Mi"
    assert shm("workers") == "4Gi"
    # Above Ray's default object store (30% of memory), so Ray keeps it in /dev/shm.
    for name, res in (("head", p.spec.ray.head), ("submitter", p.spec.ray.submitter)):
        assert quantity(shm(name)) >= quantity(res.memory) * 3 / 10
    assert quantity("1.5Gi") == 3 * 2**29 and quantity("500m") * 1000 == 500
    assert shm_size(p.spec.ray.submitter) == "342Mi"


def test_submitter_pod_template() -> None:
    p = pipeline(**{k: v for k, v in FULL.items() if k != "workers"}, submitter={"cpu": "250m"})
    sub = builders.build_rayjob(p)["spec"]["submitterPodTemplate"]
    assert sub["metadata"]["labels"][LABEL_COMPONENT] == "ray-submitter"
    assert sub["metadata"]["labels"][LABEL_PIPELINE] == "gut"
    pod = sub["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "vectorpipe-ray"
    assert pod["nodeSelector"] == {"pool": "ray"}
    assert pod["tolerations"] == [{"key": "ray", "operator": "Exists", "effect": "NoSchedule"}]
    (c,) = pod["containers"]
    # KubeRay's name for it; no command, so KubeRay writes the `ray job submit` script.
    assert c["name"] == "ray-job-submitter"
    assert "command" not in c and "args" not in c
    assert c["image"] == p.spec.ray.image
    assert (
        c["resources"]["requests"] == c["resources"]["limits"] == {"cpu": "250m", "memory": "1Gi"}
    )
    # The submitter needs neither the pipeline file nor the shared file system.
    assert {v["name"] for v in pod["volumes"]} == {"tmp", "dshm"}


def test_fixed_workers_run_no_autoscaler() -> None:
    cluster = builders.build_rayjob(pipeline(workers={"replicas": 3}))["spec"]["rayClusterSpec"]
    (group,) = cluster["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (3, 3, 3)
    assert "enableInTreeAutoscaling" not in cluster and "autoscalerOptions" not in cluster
    same = pipeline(workers={"replicas": 3, "minReplicas": 3, "maxReplicas": 3})
    assert builders.build_rayjob(same)["spec"]["rayClusterSpec"] == cluster


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        ({"replicas": 2, "minReplicas": 1, "maxReplicas": 6}, (2, 1, 6)),
        ({"replicas": 2, "maxReplicas": 4}, (2, 2, 4)),
        ({"replicas": 4, "minReplicas": 0}, (4, 0, 4)),
        ({"replicas": 0, "maxReplicas": 5}, (0, 0, 5)),
    ],
)
def test_autoscaling_workers(workers: dict[str, int], expected: tuple[int, int, int]) -> None:
    p = pipeline(workers=workers, autoscaler={"idleTimeoutSeconds": 120, "cpu": "200m"})
    cluster = builders.build_rayjob(p)["spec"]["rayClusterSpec"]
    (group,) = cluster["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == expected
    assert cluster["enableInTreeAutoscaling"] is True
    opts = cluster["autoscalerOptions"]
    assert opts["upscalingMode"] == "Default"
    assert opts["idleTimeoutSeconds"] == 120
    assert (
        opts["resources"]["requests"]
        == opts["resources"]["limits"]
        == {
            "cpu": "200m",
            "memory": "512Mi",
        }
    )
    default = pipeline(workers=workers).spec.ray.autoscaler.idle_timeout_seconds
    assert default == 60


def spec(**ray: Any) -> VectorPipelineSpec:
    return VectorPipelineSpec.model_validate(
        {"input": {"uri": "/in/"}, "output": {"uri": "/out/"}, "ray": ray}
    )


@pytest.mark.parametrize(
    ("workers", "message"),
    [
        ({"replicas": 2, "minReplicas": 3}, "workers.minReplicas must not exceed workers.replicas"),
        ({"replicas": 5, "maxReplicas": 4}, "workers.replicas must not exceed workers.maxReplicas"),
        ({"minReplicas": 2}, "workers.minReplicas must not exceed workers.replicas"),
    ],
)
def test_replica_bounds_are_checked(workers: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(workers=workers)


def test_replica_bound_rules_are_in_the_crd_schema_with_the_same_messages() -> None:
    schema = VectorPipelineSpec.model_json_schema(by_alias=True)
    rules = schema["$defs"]["WorkersSpec"]["x-kubernetes-validations"]
    assert {r["message"] for r in rules} == {
        "workers.minReplicas must not exceed workers.replicas",
        "workers.replicas must not exceed workers.maxReplicas",
    }


def test_runtime_env_yaml_is_passed_through_and_must_be_a_mapping() -> None:
    text = "env_vars:\n  OMP_NUM_THREADS: '1'\npip: [tqdm]\n"
    rj = builders.build_rayjob(pipeline(runtimeEnvYAML=text))
    assert rj["spec"]["runtimeEnvYAML"] == text
    assert "runtimeEnvYAML" not in builders.build_rayjob(pipeline())["spec"]
    with pytest.raises(ValidationError, match="must be a YAML mapping"):
        spec(runtimeEnvYAML="- a list")
    with pytest.raises(ValidationError, match="is not YAML"):
        spec(runtimeEnvYAML="a: [unclosed")


RULES = [
    {"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 60}},
    {"policy": "DeleteSelf", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 3600}},
    {"policy": "DeleteCluster", "condition": {"jobStatus": "FAILED"}},
]


def test_deletion_strategy_is_passed_through_without_shutdown_or_ttl() -> None:
    p = pipeline(shutdownAfterJobFinishes=False, deletionStrategy={"deletionRules": RULES})
    rj = builders.build_rayjob(p)["spec"]
    assert rj["deletionStrategy"]["deletionRules"][0] == RULES[0]
    assert rj["deletionStrategy"]["deletionRules"][2]["condition"] == {
        "jobStatus": "FAILED",
        "ttlSeconds": 0,
    }
    # KubeRay v1.5.0: rules and shutdownAfterJobFinishes (and its TTL) exclude each other.
    assert rj["shutdownAfterJobFinishes"] is False
    assert "ttlSecondsAfterFinished" not in rj
    assert "deletionStrategy" not in builders.build_rayjob(pipeline())["spec"]


@pytest.mark.parametrize(
    ("ray", "message"),
    [
        ({"deletionStrategy": {"deletionRules": RULES}}, "needs ray.shutdownAfterJobFinishes"),
        (
            {"shutdownAfterJobFinishes": False, "deletionStrategy": {"deletionRules": []}},
            "at least 1 item",
        ),
        (
            {
                "shutdownAfterJobFinishes": False,
                "deletionStrategy": {"deletionRules": [RULES[0], RULES[0]]},
            },
            "two rules with the same policy and jobStatus",
        ),
        (
            {
                "shutdownAfterJobFinishes": False,
                "deletionStrategy": {
                    "deletionRules": [
                        {"policy": "DeleteSelf", "condition": {"jobStatus": "FAILED"}},
                        {
                            "policy": "DeleteCluster",
                            "condition": {"jobStatus": "FAILED", "ttlSeconds": 10},
                        },
                    ]
                },
            },
            "ttlSeconds must not decrease",
        ),
        (
            {
                "shutdownAfterJobFinishes": False,
                "workers": {"maxReplicas": 3},
                "deletionStrategy": {
                    "deletionRules": [
                        {"policy": "DeleteWorkers", "condition": {"jobStatus": "SUCCEEDED"}}
                    ]
                },
            },
            "DeleteWorkers does not work with autoscaling workers",
        ),
        (
            {
                "shutdownAfterJobFinishes": False,
                "deletionStrategy": {
                    "deletionRules": [{"policy": "DeleteAll", "condition": {"jobStatus": "FAILED"}}]
                },
            },
            "policy",
        ),
        (
            {
                "shutdownAfterJobFinishes": False,
                "deletionStrategy": {"onSuccess": {"policy": "DeleteCluster"}},
            },
            "onSuccess",
        ),
    ],
    ids=["shutdown", "empty", "duplicate", "ttl-order", "workers-autoscaling", "enum", "legacy"],
)
def test_deletion_strategy_rules(ray: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**ray)


def test_deletion_rules_in_the_schema_match_the_validators() -> None:
    schema = VectorPipelineSpec.model_json_schema(by_alias=True)["$defs"]
    messages = {r["message"] for r in schema["DeletionStrategySpec"]["x-kubernetes-validations"]}
    messages |= {r["message"] for r in schema["RaySpec"]["x-kubernetes-validations"]}
    assert any("same policy and jobStatus" in m for m in messages)
    assert any("ttlSeconds must not decrease" in m for m in messages)
    assert "ray.deletionStrategy needs ray.shutdownAfterJobFinishes: false" in messages
    assert "deletionRules: DeleteWorkers does not work with autoscaling workers" in messages


def test_labels_and_annotations_reach_the_rayjob_and_ours_win() -> None:
    p = pipeline(
        labels={
            "kueue.x-k8s.io/queue-name": "team-a-queue",
            LABEL_PIPELINE: "someone-else",
            "cost-centre": "genomics",
        },
        annotations={"example.com/owner": "lab 3", "note": "free text: anything"},
    )
    meta = builders.build_rayjob(p)["metadata"]
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-queue"
    assert meta["labels"]["cost-centre"] == "genomics"
    assert meta["labels"][LABEL_PIPELINE] == "gut"
    assert meta["labels"][LABEL_COMPONENT] == "etl"
    assert meta["annotations"] == {"example.com/owner": "lab 3", "note": "free text: anything"}
    plain = builders.build_rayjob(pipeline())["metadata"]
    assert "annotations" not in plain
    assert "kueue.x-k8s.io/queue-name" not in plain["labels"]
    # Only the RayJob carries them: its pods keep the operator's labels alone.
    for template, _ in pods(builders.build_rayjob(p)).values():
        assert "kueue.x-k8s.io/queue-name" not in template["metadata"]["labels"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("labels", {"bad key!": "x"}, "not a valid label key"),
        ("labels", {"ok": "bad value!"}, "labels.ok"),
        ("labels", {"ok": "x" * 64}, "labels.ok"),
        ("annotations", {"/nope": "x"}, "not a valid annotation key"),
    ],
)
def test_label_and_annotation_syntax(field: str, value: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**{field: value})


def test_active_deadline_seconds_is_passed_and_bounded() -> None:
    assert (
        builders.build_rayjob(pipeline(activeDeadlineSeconds=7200))["spec"]["activeDeadlineSeconds"]
        == 7200
    )
    assert "activeDeadlineSeconds" not in builders.build_rayjob(pipeline())["spec"]
    # KubeRay refuses a deadline that is not positive.
    with pytest.raises(ValidationError):
        spec(activeDeadlineSeconds=0)


def test_s3_credentials_secret_reaches_every_ray_pod_by_reference() -> None:
    body = {
        "metadata": {"name": "gut", "namespace": "team-a", "uid": UID},
        "spec": {
            "input": {"uri": "s3://reads/in/"},
            "output": {"uri": "s3://reads/out/"},
            "s3": {"endpointUrl": "http://minio:9000", "credentialsSecretRef": {"name": "minio"}},
        },
    }
    rj = builders.build_rayjob(Pipeline.from_body(body))
    for name, (template, _) in pods(rj).items():
        container = template["spec"]["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "minio"}}], name
        # By reference only: no key or value of the Secret is copied into the RayJob.
        assert not any(e["name"].startswith("AWS_ACCESS") for e in container["env"]), name
    # Without the reference the pods use the default chain (IRSA): no envFrom at all.
    plain = builders.build_rayjob(pipeline())
    assert all("envFrom" not in t["spec"]["containers"][0] for t, _ in pods(plain).values())
