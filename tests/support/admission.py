"""VectorPipeline specs that must be refused, shared by the two places that refuse them.

tests/k8s/test_crd_admission.py sends each of `BAD` to the real API server (the
generated OpenAPI schema and CEL rules) and tests/unit/test_spec_pipeline.py
to the local pydantic validators; each case is (id, body, the message the API
server answers with). `pipeline` builds the valid minimal body they start from.
"""

from __future__ import annotations

from typing import Any


def pipeline(name: str = "p1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": name},
        "spec": {
            "input": {"uri": "s3://reads-bucket/in/"},
            "output": {"uri": "s3://runs-bucket/r1/"},
        },
    }
    body["spec"].update(spec)
    return body


def _without_input() -> dict[str, Any]:
    body = pipeline()
    del body["spec"]["input"]
    return body


def _named(name: str) -> dict[str, Any]:
    return pipeline(name=name)


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("missing-input", _without_input(), "spec.input: Required value"),
    (
        "k-out-of-range-for-kmer",
        pipeline(embedding={"method": "kmer", "k": 12}),
        "kmer embeddings need 2 <= k <= 8",
    ),
    (
        "k-out-of-range",
        pipeline(embedding={"method": "hashed", "k": 40}),
        "spec.embedding.k: Invalid value: 40: spec.embedding.k in body should be less than or equal to 31",
    ),
    (
        "unknown-format",
        pipeline(input={"uri": "/fsx/in/", "format": "bam"}),
        'spec.input.format: Unsupported value: "bam": supported values: "auto", "fastq", "fasta"',
    ),
    (
        "bad-uri-scheme",
        pipeline(input={"uri": "gs://bucket/reads/"}),
        "spec.input.uri in body should match '^(s3://",
    ),
    (
        "clr-with-minhash",
        pipeline(embedding={"method": "minhash", "transform": "clr"}),
        "transform is only valid for kmer",
    ),
    (
        "dim-with-kmer",
        pipeline(embedding={"dim": 64}),
        "dim is only valid for method hashed",
    ),
    (
        "abundance-k-too-short",
        pipeline(embedding={"abundance": {"k": 9}}),
        "spec.embedding.abundance.k in body should be greater than or equal to 11",
    ),
    (
        "abundance-table-too-big",
        pipeline(embedding={"abundance": {"tableBits": 29}}),
        "spec.embedding.abundance.tableBits in body should be less than or equal to 28",
    ),
    (
        "abundance-zero-weight",
        pipeline(embedding={"abundance": {"weight": 0}}),
        "spec.embedding.abundance.weight in body should be greater than 0",
    ),
    (
        "n-init-zero",
        pipeline(hpc={"app": {"nInit": 0}}),
        "spec.hpc.app.nInit in body should be greater than or equal to 1",
    ),
    (
        "same-uri",
        pipeline(output={"uri": "s3://reads-bucket/in/"}),
        "output.uri must differ from input.uri",
    ),
    (
        "endpoint-without-token",
        pipeline(hpc={"slurm": {"endpoint": "https://head:8082"}}),
        "hpc.slurm.tokenSecretRef is required when hpc.slurm.endpoint is set",
    ),
    (
        "ca-bundle-without-endpoint",
        pipeline(hpc={"slurm": {"caBundleSecretRef": {"name": "slurmrestd-ca"}}}),
        "hpc.slurm.caBundleSecretRef needs hpc.slurm.endpoint",
    ),
    (
        "shared-fs-relative-mount",
        pipeline(ray={"sharedFilesystem": {"claimName": "fsx", "mountPath": "fsx"}}),
        "spec.ray.sharedFilesystem.mountPath in body should match",
    ),
    (
        "bad-toleration-effect",
        pipeline(ray={"tolerations": [{"key": "ray", "effect": "Sometimes"}]}),
        'Unsupported value: "Sometimes"',
    ),
    (
        "unknown-output-format",
        pipeline(output={"uri": "/fsx/out/", "format": "csv"}),
        'spec.output.format: Unsupported value: "csv"',
    ),
    (
        "bad-quantity",
        pipeline(ray={"workers": {"memory": "lots"}}),
        "spec.ray.workers.memory in body should match",
    ),
    (
        "unknown-field",
        pipeline(embedding={"kk": 3}),
        'unknown field "spec.embedding.kk"',
    ),
    (
        "name-too-long",
        _named("a" * 44),
        "metadata.name plus '-' and spec.runId must be at most 43 characters",
    ),
    (
        "name-plus-run-id-too-long",
        pipeline("a" * 40, runId="abc"),
        "metadata.name plus '-' and spec.runId must be at most 43 characters",
    ),
    (
        "run-id-not-a-label",
        pipeline(runId="Run_2"),
        "spec.runId in body should match",
    ),
    (
        "name-starts-with-digit",
        _named("42-run"),
        "metadata.name must start with a letter",
    ),
]
