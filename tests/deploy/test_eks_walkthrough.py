"""docs/eks.md and the pipeline it submits agree with the files they use.

The walkthrough names only files that exist, the README links it, and the
pipeline it submits (charts/deploy/eks/pipeline-eks.yaml) is a valid
VectorPipeline whose S3 URIs the Ray and operator roles cover, whose Slurm
settings match the chart values and the ParallelCluster config.
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
    from vectorpipe_workloads.manifest import manifest_uri
    from vectorpipe_workloads.spec import PipelineDocument

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
    queues = {q["Name"] for q in pcluster["Scheduling"]["SlurmQueues"]}
    assert slurm.partition in queues
    head_args = pcluster["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Args"]
    assert head_args[head_args.index("--user") + 1] == slurm.user


def test_walkthrough_names_only_files_that_exist() -> None:
    text = DOC.read_text()
    paths = set(re.findall(r"(?<![\w/.-])((?:charts|docs|examples|slurm-bridge)/[\w./-]*\w)", text))
    assert len(paths) >= 10, "the walkthrough should point at the files it uses"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []


def test_readme_links_the_walkthrough() -> None:
    assert "(docs/eks.md)" in (ROOT / "README.md").read_text()
