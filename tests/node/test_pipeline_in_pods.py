"""Issue 13: the production path in real pods on the one-node cluster.

`helm install charts/vectorpipe` starts the operator and the slurm-bridge as
pods; `kubectl apply` of a VectorPipeline in a namespace that enforces Pod
Security `restricted` makes the real KubeRay operator (a pod too) start a Ray
head, a worker and a submitter from our ray-worker image; the submitter runs
`ray job submit` against the head's Service through CoreDNS and kube-proxy;
stage 1 reads from and writes to the S3 API (inside the cluster's network
namespace); the operator reads the manifest, creates the SlurmJob; the bridge
submits it to slurmrestd; Slurm runs the MPI k-means. This replaces the RayJob
harness for the end-to-end test.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.node import NetnsServices, NodeCluster
from vectorpipe_workloads.manifest import clustering_uri

pytestmark = [pytest.mark.node, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "examples" / "data"
RAY_IMAGE = "localhost/vectorpipe/ray-worker:dev"
TIMEOUT = 1200.0


def restricted_namespace(
    cluster: NodeCluster, services: NetnsServices, name: str, cleanup: list[str]
) -> str:
    """A pipelines namespace as the README sets one up: Pod Security, the Slurm token, S3 keys.

    It goes on `cleanup` (the `pipelines_namespaces` fixture), deleted after the test.
    """
    cluster.kubectl("create", "namespace", name)
    cleanup.append(name)
    cluster.kubectl(
        "label", "namespace", name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    # Stage 1's identity on this cluster: the S3 API's dummy keys in a Secret
    # (on EKS, IRSA on the Ray pods' service account takes its place).
    cluster.kubectl(
        "-n", name, "create", "secret", "generic", "s3-credentials",
        "--from-literal=AWS_ACCESS_KEY_ID=testing",
        "--from-literal=AWS_SECRET_ACCESS_KEY=testing",
    )  # fmt: skip
    cluster.kubectl(
        "-n", name, "create", "secret", "generic", "slurm-jwt",
        f"--from-literal=token={services.info['token']}",
    )  # fmt: skip
    return name


def pipeline_body(name: str, services: NetnsServices, bucket: str, **ray: Any) -> dict[str, Any]:
    info = services.info
    # Two CPUs on this node: the Ray pods ask for half a core each and tell Ray
    # it has one, so head, worker, submitter and the controllers all fit.
    small = {"cpu": "500m", "memory": "2Gi", "rayStartParams": {"num-cpus": "1"}}
    ray_spec: dict[str, Any] = {
        "image": RAY_IMAGE,
        "head": dict(small),
        "workers": {**small, "replicas": 1},
        "submitter": {"cpu": "200m", "memory": "512Mi"},
        "ttlSecondsAfterFinished": 0,
        **ray,
    }
    return {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": name},
        "spec": {
            "input": {"uri": f"s3://{bucket}/reads/", "format": "auto"},
            "embedding": {"method": "kmer", "k": 4, "canonical": True},
            "output": {"uri": f"s3://{bucket}/runs/{name}/", "format": "parquet", "shards": 4},
            "s3": {
                "endpointUrl": info["s3_endpoint"],
                "region": "us-east-1",
                "credentialsSecretRef": {"name": "s3-credentials"},
            },
            "ray": ray_spec,
            "hpc": {
                "slurm": {
                    "endpoint": info["rest_url"],
                    "tokenSecretRef": {"name": "slurm-jwt"},
                    "user": "root",
                    "nodes": 1,
                    "ntasksPerNode": 2,
                    "timeLimit": "00:10:00",
                },
                "app": {"name": "kmeans", "clusters": 3, "seed": 0},
            },
        },
    }


def upload_reads(services: NetnsServices, bucket: str) -> None:
    s3c = services.s3_client()
    s3c.create_bucket(Bucket=bucket)
    for p in sorted(p for p in DATA.iterdir() if p.is_file()):
        s3c.upload_file(str(p), bucket, f"reads/{p.name}")


def apply(cluster: NodeCluster, ns: str, body: dict[str, Any], tmp: Path) -> None:
    f = tmp / f"{body['metadata']['name']}.json"
    f.write_text(json.dumps(body))
    cluster.kubectl("apply", "-n", ns, "-f", str(f))


def phase(cluster: NodeCluster, ns: str, name: str) -> str:
    out = cluster.kubectl(
        "-n", ns, "get", "vectorpipeline", name, "-o", "jsonpath={.status.phase}", check=False
    )
    return out.strip()


def pods(cluster: NodeCluster, ns: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get("pods", "-n", ns, "-l", selector)["items"]
    return items


def test_cluster_is_sealed_in_its_network_namespace(node_cluster: NodeCluster) -> None:
    """Nothing routes out: the namespace has no default route and no link but its own."""
    netns = node_cluster.netns.rsplit("/", 1)[-1]
    routes = subprocess.run(
        ["ip", "-n", netns, "route", "show"], capture_output=True, text=True, check=True
    ).stdout
    assert "default" not in routes, routes
    assert node_cluster.node_ip in routes or "10.244.0.0/24" in routes, routes
    links = subprocess.run(
        ["ip", "-n", netns, "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    # lo, the node's in-namespace veth pair, the pod bridge and the pods' veths only.
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        assert name == "lo" or name.startswith(("vpnode", "vp0", "veth")), line
    # The node registered with its namespace address, and CoreDNS answers in-cluster names.
    node = node_cluster.get("node", "vpnode")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == node_cluster.node_ip, addresses


def test_release_pods_are_ready_and_helm_test_passes(
    node_cluster: NodeCluster, vectorpipe_release: str
) -> None:
    ns = vectorpipe_release
    items = node_cluster.get("pods", "-n", ns)["items"]
    names = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in items}
    assert {"operator", "slurm-bridge"} <= names, names
    for p in items:
        conds = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
        assert p["status"]["phase"] == "Running" and conds.get("Ready") == "True", p["status"]
        # The images are the ones built here, started by the kubelet (no registry).
        image = p["spec"]["containers"][0]["image"]
        assert image.startswith("localhost/vectorpipe/"), image
    # (Its pod is deleted when it passes: hook-delete-policy hook-succeeded.)
    out = node_cluster.helm("test", "vp", "--namespace", ns, timeout=600)
    assert re.search(r"^Phase:\s+Succeeded$", out, re.M), out
    # The KubeRay operator runs as a pod too, from the image built from its module.
    kuberay = node_cluster.get("pods", "-n", "kuberay-system")["items"]
    assert kuberay and kuberay[0]["status"]["phase"] == "Running", kuberay
    assert "localhost/vectorpipe/kuberay-operator" in kuberay[0]["spec"]["containers"][0]["image"]


def test_pipeline_runs_end_to_end_in_real_pods(
    node_cluster: NodeCluster,
    node_services: NetnsServices,
    vectorpipe_release: str,
    tmp_path: Path,
    pipelines_namespaces: list[str],
) -> None:
    ns = restricted_namespace(node_cluster, node_services, "pipelines-e2e", pipelines_namespaces)
    bucket = "vp-node-e2e"
    upload_reads(node_services, bucket)
    body = pipeline_body("e2e", node_services, bucket)
    apply(node_cluster, ns, body, tmp_path)

    # KubeRay makes the head, worker and submitter pods from our image, and they
    # run: the kubelet admitted them under `restricted`.
    seen: dict[str, str] = {}
    labels: dict[str, dict[str, str]] = {}

    def ray_pods_ran() -> bool:
        for p in pods(node_cluster, ns, "app.kubernetes.io/managed-by=vectorpipe-operator"):
            labels[p["metadata"]["name"]] = p["metadata"]["labels"]
            for c in p["status"].get("containerStatuses", []):
                if c.get("state", {}).get("running") or c.get("state", {}).get("terminated"):
                    seen[p["metadata"]["name"]] = c["image"]
        return phase(node_cluster, ns, "e2e") in ("Succeeded", "Failed")

    node_cluster.wait("the pipeline to finish", ray_pods_ran, timeout=TIMEOUT, interval=3)
    vp = node_cluster.get("vectorpipeline", "-n", ns, "e2e")
    assert vp["status"]["phase"] == "Succeeded", json.dumps(vp["status"], indent=1)
    heads = [n for n in seen if "-head-" in n]
    workers = [n for n in seen if "-worker" in n]
    assert heads and workers, seen
    assert all(RAY_IMAGE.split(":")[0] in image for image in seen.values()), seen

    outputs = vp["status"]["outputs"]
    assert outputs["rows"] == 15000, outputs
    assert outputs["dim"] == 137, outputs
    # The RayJob mirror names what KubeRay made for this run.
    mirror = vp["status"]["ray"]
    assert mirror["rayClusterName"].startswith("e2e-etl-"), mirror
    assert mirror["jobId"], mirror
    assert all(n.startswith(mirror["rayClusterName"]) for n in heads + workers), (mirror, seen)

    sj = node_cluster.get("slurmjob", "-n", ns, "e2e-kmeans")
    assert sj["status"]["phase"] == "Succeeded", sj["status"]
    jobs = node_services.slurm_jobs(sj["metadata"]["uid"])
    assert len(jobs) == 1, jobs
    assert jobs[0].state == "COMPLETED", jobs[0]

    s3c = node_services.s3_client()
    out_uri = body["spec"]["output"]["uri"]
    c_prefix = clustering_uri(out_uri).removeprefix(f"s3://{bucket}/")
    metrics = json.loads(
        s3c.get_object(Bucket=bucket, Key=f"{c_prefix}metrics.json")["Body"].read()
    )
    assert (metrics["rows"], metrics["dim"], metrics["clusters"]) == (15000, 137, 3), metrics
    assert metrics["ranks"] == 2, metrics

    # The chart's NetworkPolicy for this namespace is admitted and selects the
    # Ray head and workers (not the submitter, which only calls the head). The
    # `bridge` CNI here does not enforce it (docs/security.md).
    policy = node_cluster.helm(
        "template", "vp", "charts/vectorpipe", "--namespace", vectorpipe_release,
        "--kube-version", json.loads(node_cluster.kubectl("get", "--raw", "/version"))["gitVersion"],
        "--show-only", "templates/networkpolicy.yaml", "--set", f"networkPolicy.namespaces={{{ns}}}",
    )  # fmt: skip
    (tmp_path / "policy.yaml").write_text(policy)
    node_cluster.kubectl("apply", "-f", str(tmp_path / "policy.yaml"))
    docs = [d for d in yaml.safe_load_all(policy) if d and d["metadata"]["namespace"] == ns]
    selector = docs[0]["spec"]["podSelector"]["matchLabels"]
    selected = {n for n, lab in labels.items() if selector.items() <= lab.items()}
    assert selected == set(heads) | set(workers), (selected, sorted(labels))

    # Deleting the pipeline takes the SlurmJob with it (finalizer, then owner references).
    node_cluster.kubectl("-n", ns, "delete", "vectorpipeline", "e2e", "--wait=true", timeout=300)
    node_cluster.wait(
        "the SlurmJob to go",
        lambda: not node_cluster.get("slurmjobs", "-n", ns)["items"],
        timeout=120,
    )
