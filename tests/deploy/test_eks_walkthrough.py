"""docs/eks.md and the pipeline it submits agree with the files they use.

The walkthrough names only files that exist, the README links it, and the
pipeline it submits (charts/deploy/eks/pipeline-eks.yaml) is a valid
VectorPipeline whose S3 URIs the Ray and operator roles cover, whose Slurm
settings (CA bundle included) match the chart values, the token Secret of the
walkthrough and the ParallelCluster config, and whose Ray pods land on the
ray-workers node group with the FSx claim mounted.
"""

from __future__ import annotations

import re

import yaml

from tests.deploy.iam_eval import allowed
from tests.deploy.support import (
    DOC,
    EKS,
    IAM,
    ROOT,
    example_env,
    render_json,
    render_yaml_docs,
)

ENV = example_env()


def test_walkthrough_pipeline_fits_the_roles_the_chart_and_the_cluster() -> None:
    from vectorpipe_api.pipeline import PipelineDocument
    from vectorpipe_workloads.manifest import manifest_uri

    (doc,) = render_yaml_docs(EKS / "pipeline-eks.yaml", ENV)
    spec = PipelineDocument.model_validate(doc).spec
    assert doc["metadata"]["namespace"] == ENV["PIPELINE_NAMESPACE"]
    assert spec.ray.service_account_name == "vectorpipe-ray"
    assert spec.ray.image == f"{ENV['IMAGE_REGISTRY']}/ray-worker:{ENV['VECTORPIPE_VERSION']}"
    # The Ray role can do this pipeline's stage 1, the operator role its manifest read.
    ray = render_json(IAM / "vectorpipe-ray-s3.json", ENV)
    assert allowed(ray, "s3:GetObject", "arn:aws:s3:::" + spec.input.uri[5:] + "a.fastq.gz")
    assert allowed(
        ray, "s3:PutObject", "arn:aws:s3:::" + spec.output.uri[5:] + "part-00000.parquet"
    )
    operator = render_json(IAM / "vectorpipe-operator-s3.json", ENV)
    assert allowed(operator, "s3:GetObject", "arn:aws:s3:::" + manifest_uri(spec.output.uri)[5:])
    # Stage 2 goes where the chart values and the ParallelCluster config say.
    (values,) = render_yaml_docs(EKS / "values-eks.yaml", ENV)
    slurm = spec.hpc.slurm
    assert slurm.endpoint == values["slurm"]["endpoint"] == ENV["SLURM_ENDPOINT"]
    assert slurm.user == values["slurm"]["user"]
    assert slurm.token_secret_ref is not None
    assert slurm.token_secret_ref.name == values["slurm"]["token"]["secretName"]
    assert slurm.token_secret_ref.key == values["slurm"]["token"]["key"]
    pcluster = yaml.safe_load(
        (ROOT / "slurm-bridge" / "parallelcluster" / "cluster-config.yaml").read_text()
    )
    # slurmrestd's private CA: the key step 8 puts into the token Secret, a
    # Secret the chart lets the bridge read.
    ca = slurm.ca_bundle_secret_ref
    assert ca is not None, "the SlurmJobs would not trust the head node's certificate"
    assert (ca.name, ca.key) == (values["slurm"]["caBundle"]["secretName"], "ca.crt")
    assert ca.key == values["slurm"]["caBundle"]["key"]
    step8 = DOC.read_text().split("## 8.")[1].split("## 9.")[0]
    assert f"create secret generic {ca.name} " in step8
    assert f"--from-literal={ca.key}=" in step8
    queues = {q["Name"] for q in pcluster["Scheduling"]["SlurmQueues"]}
    assert slurm.partition in queues
    head_args = pcluster["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Args"]
    assert head_args[head_args.index("--user") + 1] == slurm.user


def test_walkthrough_pipeline_runs_ray_on_the_ray_workers_with_fsx() -> None:
    from vectorpipe_api.pipeline import PipelineDocument

    (doc,) = render_yaml_docs(EKS / "pipeline-eks.yaml", ENV)
    ray = PipelineDocument.model_validate(doc).spec.ray
    (cluster,) = render_yaml_docs(EKS / "cluster.yaml", ENV)
    groups = {g["name"]: g for g in cluster["managedNodeGroups"]}
    labels = groups["ray-workers"]["labels"]
    assert ray.node_selector and ray.node_selector.items() <= labels.items()
    assert not any(
        ray.node_selector.items() <= g.get("labels", {}).items()
        for name, g in groups.items()
        if name != "ray-workers"
    )
    # The FSx start-up taint keeps pods off a node until the driver can mount;
    # tolerating it would defeat that.
    taints = {t["key"] for t in groups["ray-workers"]["taints"]}
    assert not {t.key for t in ray.tolerations} & taints
    fs = ray.shared_filesystem
    assert fs is not None
    (claim,) = render_yaml_docs(EKS / "fsx" / "persistentvolumeclaim.yaml", ENV)
    assert fs.claim_name == claim["metadata"]["name"]
    assert claim["metadata"]["namespace"] == doc["metadata"]["namespace"]
    (shell,) = render_yaml_docs(EKS / "fsx" / "fsx-shell.yaml", ENV)
    mounts = {m["name"]: m["mountPath"] for m in shell["spec"]["containers"][0]["volumeMounts"]}
    assert fs.mount_path == mounts["fsx"]


def test_walkthrough_names_only_files_that_exist() -> None:
    text = DOC.read_text()
    paths = set(re.findall(r"(?<![\w/.-])((?:charts|docs|examples|slurm-bridge)/[\w./-]*\w)", text))
    assert len(paths) >= 10, "the walkthrough should point at the files it uses"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []


def test_readme_links_the_walkthrough() -> None:
    assert "(docs/eks.md)" in (ROOT / "README.md").read_text()
