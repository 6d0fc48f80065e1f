"""Pure builders of the pods in a RayJob: Ray head, Ray workers, submitter, autoscaler.

`builders.build_rayjob` assembles the RayJob; this module makes the parts
KubeRay turns into pods, every one fit for a namespace labelled Pod Security
`restricted`: the pod runs as the image's user (uid/gid 1000, non-root,
RuntimeDefault seccomp), and each container has no privilege escalation, no
capabilities and a read-only root file system. What Ray writes goes to
emptyDirs: /tmp (Ray's session dir /tmp/ray, numba's cache, Python's temp
files; HOME points there too, since the image's /home/ray is on the read-only
root) and /dev/shm (memory-backed, Ray's object store).

What KubeRay v1.5.0 adds to these templates, and why it stays restricted:
the worker's `wait-gcs-ready` init container copies the Ray container's
securityContext, env and volumeMounts; the head's `autoscaler` sidecar takes
its securityContext, env and extra mounts from `autoscalerOptions`; KubeRay
mounts its own `ray-logs` emptyDir at /tmp/ray in the head and autoscaler
when autoscaling, and adds no /dev/shm volume where one is mounted already.
The submitter pod is our template as is, with KubeRay's `ray job submit`
command filled in because its container has none.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from vectorpipe_api.pipeline import PodResourcesSpec, ResourcesSpec
from vectorpipe_operator.resources import CONFIG_MOUNT, Pipeline

CONFIG_VOLUME = "pipeline"
SHARED_VOLUME = "shared-fs"
TMP_VOLUME = "tmp"
SHM_VOLUME = "dshm"
WORKER_GROUP = "workers"
# KubeRay's default name for the submitter container (utils.SubmitterContainerName).
SUBMITTER_CONTAINER = "ray-job-submitter"
# The ray-worker image's user and group (images/ray-worker/Containerfile).
RAY_UID = 1000
HOME = "/tmp"
# /dev/shm defaults to this share of the container's memory: just above Ray's
# default object store (30% of the memory it sees, the cgroup limit), so Ray
# puts the store in /dev/shm rather than falling back to disk under /tmp.
SHM_SHARE = Fraction(1, 3)

_SUFFIX: dict[str, int | Fraction] = {
    "": 1,
    "m": Fraction(1, 1000),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")


def quantity(value: str) -> Fraction:
    """A Kubernetes quantity (the forms QUANTITY_PATTERN admits) as an exact number."""
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    return Fraction(match.group(1)) * Fraction(_SUFFIX[match.group(2) or ""])


def shm_size(res: PodResourcesSpec) -> str:
    """The /dev/shm size limit: the spec's, or a share of the memory rounded up to Mi."""
    if res.shared_memory:
        return res.shared_memory
    mebibytes = math.ceil(quantity(res.memory) * SHM_SHARE / 2**20)
    return f"{max(mebibytes, 1)}Mi"


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        "runAsGroup": RAY_UID,
        "fsGroup": RAY_UID,
        # Never chown a whole shared file system on every mount.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _requests_limits(cpu: str, memory: str) -> dict[str, Any]:
    # Requests equal limits: Ray sizes its resources from the limits.
    quantities = {"cpu": cpu, "memory": memory}
    return {"requests": dict(quantities), "limits": dict(quantities)}


def _scratch_volumes(res: PodResourcesSpec) -> list[dict[str, Any]]:
    return [
        {"name": TMP_VOLUME, "emptyDir": {}},
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size(res)}},
    ]


def _scratch_mounts() -> list[dict[str, Any]]:
    return [
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
        {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
    ]


def s3_env(p: Pipeline) -> list[dict[str, str]]:
    # The ETL reads spec.s3 from the mounted pipeline file; the environment
    # also points botocore's default chain (and any tool in the image, such as
    # `ray job submit`'s working-dir upload) at the same place. Stage 2 gets
    # the same settings as flags (`kmeans_argv`), the one way they reach it.
    env = []
    if p.spec.s3.endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL_S3", "value": p.spec.s3.endpoint_url})
    if p.spec.s3.region:
        env.append({"name": "AWS_REGION", "value": p.spec.s3.region})
    return env


def _pod_spec(p: Pipeline, container: dict[str, Any], res: PodResourcesSpec) -> dict[str, Any]:
    """A restricted pod around `container`: scratch volumes, placement, identity."""
    ray = p.spec.ray
    container["securityContext"] = container_security_context()
    container["env"] = [{"name": "HOME", "value": HOME}, *s3_env(p)]
    if p.spec.s3.credentials_secret_ref:
        container["envFrom"] = [{"secretRef": {"name": p.spec.s3.credentials_secret_ref.name}}]
    container["volumeMounts"] = [*container.get("volumeMounts", []), *_scratch_mounts()]
    spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": _scratch_volumes(res),
    }
    if ray.service_account_name:
        spec["serviceAccountName"] = ray.service_account_name
    if ray.node_selector:
        spec["nodeSelector"] = dict(ray.node_selector)
    if ray.tolerations:
        spec["tolerations"] = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in ray.tolerations
        ]
    return spec


def ray_pod_template(
    p: Pipeline, container: str, res: ResourcesSpec, pod_labels: dict[str, str]
) -> dict[str, Any]:
    """A head or worker pod: the Ray container with the pipeline file (and shared FS)."""
    ray = p.spec.ray
    c: dict[str, Any] = {
        "name": container,
        "image": ray.image,
        "resources": _requests_limits(res.cpu, res.memory),
        "volumeMounts": [{"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT, "readOnly": True}],
    }
    spec = _pod_spec(p, c, res)
    spec["volumes"].insert(0, {"name": CONFIG_VOLUME, "configMap": {"name": p.configmap_name}})
    if ray.shared_filesystem:
        fs = ray.shared_filesystem
        spec["volumes"].append(
            {
                "name": SHARED_VOLUME,
                "persistentVolumeClaim": {"claimName": fs.claim_name, "readOnly": fs.read_only},
            }
        )
        c["volumeMounts"].append(
            {"name": SHARED_VOLUME, "mountPath": fs.mount_path, "readOnly": fs.read_only}
        )
    return {"metadata": {"labels": dict(pod_labels)}, "spec": spec}


def submitter_pod_template(p: Pipeline, pod_labels: dict[str, str]) -> dict[str, Any]:
    """The pod of KubeRay's submitter Job (K8sJobMode).

    The container has no command, so KubeRay fills in its `ray job submit ...
    ray job logs --follow` script (and PYTHONUNBUFFERED, RAY_DASHBOARD_ADDRESS,
    RAY_JOB_SUBMISSION_ID); the image is the Ray image, as KubeRay's default is.
    """
    sub = p.spec.ray.submitter
    c: dict[str, Any] = {
        "name": SUBMITTER_CONTAINER,
        "image": p.spec.ray.image,
        "resources": _requests_limits(sub.cpu, sub.memory),
    }
    spec = _pod_spec(p, c, sub)
    spec["restartPolicy"] = "Never"
    return {"metadata": {"labels": dict(pod_labels)}, "spec": spec}


def autoscaler_options(p: Pipeline) -> dict[str, Any]:
    """`rayClusterSpec.autoscalerOptions`: the head's autoscaler sidecar, restricted too.

    KubeRay builds the container itself and takes from here its securityContext,
    resources, extra env and extra mounts; the mount uses the head pod's /tmp
    emptyDir (KubeRay adds its shared /tmp/ray log volume on top).
    """
    a = p.spec.ray.autoscaler
    return {
        "upscalingMode": "Default",
        "idleTimeoutSeconds": a.idle_timeout_seconds,
        "resources": _requests_limits(a.cpu, a.memory),
        "securityContext": container_security_context(),
        "env": [{"name": "HOME", "value": HOME}],
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
    }


def ray_cluster_spec(p: Pipeline, pod_labels: dict[str, str]) -> dict[str, Any]:
    """`rayClusterSpec`: the head, the worker group if any, the autoscaler if it can scale."""
    ray = p.spec.ray
    cluster: dict[str, Any] = {
        "rayVersion": ray.ray_version,
        "headGroupSpec": {
            "rayStartParams": dict(ray.head.ray_start_params),
            "template": ray_pod_template(p, "ray-head", ray.head, pod_labels),
        },
    }
    workers = ray.workers
    if workers.highest > 0:
        cluster["workerGroupSpecs"] = [
            {
                "groupName": WORKER_GROUP,
                "replicas": workers.replicas,
                "minReplicas": workers.lowest,
                "maxReplicas": workers.highest,
                "rayStartParams": dict(workers.ray_start_params),
                "template": ray_pod_template(p, "ray-worker", workers, pod_labels),
            }
        ]
    if workers.autoscaling:
        cluster["enableInTreeAutoscaling"] = True
        cluster["autoscalerOptions"] = autoscaler_options(p)
    return cluster
