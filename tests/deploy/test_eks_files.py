"""The EKS deployment files in charts/deploy/eks/: parse, render, schema, least privilege.

Pure and fast (no cluster, no AWS): every YAML/JSON file parses before and after
its `${...}` placeholders are rendered; the placeholders are exactly those
listed in vectorpipe.env.example and render.sh (envsubst) renders them the
same way; cluster.yaml validates against the ClusterConfig schema
eksctl itself embeds (pinned eksctl Go module) and wires IRSA to the
ServiceAccounts the chart and the examples really use; the IAM policies are
judged by a small policy evaluator on the requests the ETL and the operator
make (and must not be able to make); the FSx objects point at each other.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.iam_eval import allowed
from tests.deploy.support import (
    CHART,
    CLUSTER,
    EKS,
    ENV_EXAMPLE,
    FSX,
    IAM,
    RENDER,
    ROOT,
    eksctl_schema,
    example_env,
    placeholders,
    render,
    render_json,
    render_yaml_docs,
    templates,
)

ENV = example_env()
WRITE_ACTIONS = ("s3:Put", "s3:Delete", "s3:Abort", "s3:Restore", "s3:Replicate", "s3:Create")
TAINT_EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}


def cluster(env: dict[str, str] = ENV) -> dict[str, Any]:
    (doc,) = render_yaml_docs(CLUSTER, env)
    return doc


def service_account(name: str) -> dict[str, Any]:
    (sa,) = [s for s in cluster()["iam"]["serviceAccounts"] if s["metadata"]["name"] == name]
    return sa


def policy_name(arn: str) -> str:
    prefix = f"arn:aws:iam::{ENV['AWS_ACCOUNT_ID']}:policy/"
    assert arn.startswith(prefix), arn
    return arn[len(prefix) :]


# ---------------------------------------------------------------- parsing, placeholders
@pytest.mark.parametrize("path", templates(), ids=lambda p: str(p.relative_to(EKS)))
def test_every_file_parses_before_and_after_rendering(path: Path) -> None:
    for text in (path.read_text(), render(path.read_text(), ENV)):
        if path.suffix == ".json":
            assert isinstance(json.loads(text), dict)
        else:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
            assert docs, f"{path} has no YAML document"
            # Objects, or a JSON patch (a list of operations).
            assert all(isinstance(d, dict | list) for d in docs)


def test_placeholders_are_exactly_those_in_the_env_example() -> None:
    used: set[str] = set()
    for path in templates():
        used |= placeholders(path.read_text())
    defined = set(ENV)
    assert used - defined == set(), f"used but not in {ENV_EXAMPLE.name}: {sorted(used - defined)}"
    assert defined - used == set(), f"in {ENV_EXAMPLE.name} but unused: {sorted(defined - used)}"
    assert all(ENV.values()), "every placeholder needs an example value"


@pytest.mark.parametrize("path", templates(), ids=lambda p: str(p.relative_to(EKS)))
def test_rendering_leaves_no_placeholder(path: Path) -> None:
    assert placeholders(render(path.read_text(), ENV)) == set()


@pytest.mark.skipif(
    shutil.which("envsubst") is None, reason="envsubst (gettext-base) not installed"
)
def test_render_script_renders_like_the_tests(tmp_path: Path) -> None:
    env_file = tmp_path / "my.env"
    env_file.write_text(ENV_EXAMPLE.read_text())
    out = tmp_path / "rendered"
    subprocess.run(["bash", str(RENDER), str(env_file), str(out)], check=True, timeout=60)
    produced = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert produced == [p.relative_to(EKS) for p in templates()]
    for path in templates():
        assert (out / path.relative_to(EKS)).read_text() == render(path.read_text(), ENV), path


@pytest.mark.skipif(
    shutil.which("envsubst") is None, reason="envsubst (gettext-base) not installed"
)
def test_render_script_refuses_an_env_file_that_misses_a_name(tmp_path: Path) -> None:
    env_file = tmp_path / "my.env"
    lines = ENV_EXAMPLE.read_text().splitlines()
    env_file.write_text("\n".join(line for line in lines if not line.startswith("FSX_DNS_NAME=")))
    clean = {k: v for k, v in os.environ.items() if k not in ENV}
    proc = subprocess.run(
        ["bash", str(RENDER), str(env_file), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        check=False,
    )
    assert proc.returncode == 1
    assert "FSX_DNS_NAME" in proc.stderr
    assert not (tmp_path / "out" / "cluster.yaml").exists()


# ---------------------------------------------------------------- eksctl ClusterConfig
@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    try:
        return eksctl_schema()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def test_cluster_config_validates_against_eksctl_schema(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(cluster())]
    assert errors == []


def test_eksctl_schema_rejects_what_eksctl_would(schema: dict[str, Any]) -> None:
    # The schema is strict (additionalProperties: false), so a misspelt key fails.
    validator = jsonschema.Draft7Validator(schema)
    typo = cluster()
    typo["managedNodeGroups"][0]["instanceTyp"] = typo["managedNodeGroups"][0].pop("instanceType")
    assert not validator.is_valid(typo)
    wrong_type = cluster()
    wrong_type["iam"]["withOIDC"] = "yes"
    assert not validator.is_valid(wrong_type)


def test_cluster_has_oidc_and_one_role_per_identity() -> None:
    cfg = cluster()
    assert cfg["iam"]["withOIDC"] is True
    accounts = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s
        for s in cfg["iam"]["serviceAccounts"]
    }
    ns = ENV["PIPELINE_NAMESPACE"]
    assert set(accounts) == {
        (ns, "vectorpipe-ray"),
        ("vectorpipe-system", "vectorpipe-operator"),
        (ns, "slurm-jwt-sync"),
    }
    # eksctl creates only the Ray ServiceAccount; the chart and the token
    # CronJob create their own, so eksctl must make just the role for them.
    assert not accounts[(ns, "vectorpipe-ray")].get("roleOnly", False)
    assert accounts[("vectorpipe-system", "vectorpipe-operator")]["roleOnly"] is True
    assert accounts[(ns, "slurm-jwt-sync")]["roleOnly"] is True
    for sa in accounts.values():
        assert sa["roleName"], "a fixed role name makes the ARN the chart values use predictable"
        assert not sa.get("wellKnownPolicies") and not sa.get("attachPolicy")
        assert len(sa["attachPolicyARNs"]) == 1


def test_operator_identity_matches_the_chart_and_its_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    sa_values = values["operator"]["serviceAccount"]
    assert sa_values["create"] is True
    # Release `vectorpipe` (docs/eks.md): the chart names it <fullname>-operator
    # and the fullname of a release that contains the chart name is the release name.
    assert (sa_values["name"] or "vectorpipe-operator") == "vectorpipe-operator"
    sa = service_account("vectorpipe-operator")
    (eks_values,) = render_yaml_docs(EKS / "values-eks.yaml", ENV)
    arn = eks_values["operator"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert arn == f"arn:aws:iam::{ENV['AWS_ACCOUNT_ID']}:role/{sa['roleName']}"
    assert eks_values["rbac"]["namespaces"] == [ENV["PIPELINE_NAMESPACE"]]
    assert "annotations" not in eks_values["slurmBridge"].get("serviceAccount", {})


def test_ray_identity_is_the_one_pipelines_name() -> None:
    example = yaml.safe_load((ROOT / "examples" / "pipeline-s3.yaml").read_text())
    assert example["spec"]["ray"]["serviceAccountName"] == "vectorpipe-ray"
    (pod,) = render_yaml_docs(FSX / "fsx-shell.yaml", ENV)
    assert pod["spec"]["serviceAccountName"] == "vectorpipe-ray"


def test_token_sync_identity_matches_docs_parallelcluster() -> None:
    doc = (ROOT / "docs" / "parallelcluster.md").read_text()
    sa = service_account("slurm-jwt-sync")
    assert "name: slurm-jwt-sync" in doc
    assert f":role/{sa['roleName']}" in doc


def test_policy_arns_name_the_policy_files() -> None:
    attached = {
        policy_name(arn)
        for s in cluster()["iam"]["serviceAccounts"]
        for arn in s["attachPolicyARNs"]
    }
    ours = {p.stem for p in IAM.glob("*.json")}
    assert ours <= attached, f"policy files attached to nobody: {sorted(ours - attached)}"
    others = attached - ours
    assert others == {"vectorpipe-slurm-token-reader"}
    assert (ROOT / "slurm-bridge" / "parallelcluster" / "iam" / "slurm-token-reader.json").exists()


def test_fsx_csi_addon_without_iam_and_hardened_node_groups() -> None:
    cfg = cluster()
    addons = {a["name"]: a for a in cfg["addons"]}
    assert {"vpc-cni", "coredns", "kube-proxy", "aws-fsx-csi-driver"} <= set(addons)
    fsx = addons["aws-fsx-csi-driver"]
    assert not (
        fsx.get("attachPolicyARNs") or fsx.get("attachPolicy") or fsx.get("wellKnownPolicies")
    )
    groups = {g["name"]: g for g in cfg["managedNodeGroups"]}
    assert set(groups) == {"system", "ray-workers"}
    for group in groups.values():
        assert group["amiFamily"] == "AmazonLinux2023"
        assert group["privateNetworking"] is True
        assert group["disableIMDSv1"] is True and group["disablePodIMDS"] is True
        assert group["volumeEncrypted"] is True
        assert group["securityGroups"]["attachIDs"] == [ENV["NODE_SECURITY_GROUP_ID"]]
        assert group["minSize"] <= group["desiredCapacity"] <= group["maxSize"]
        assert all(t["effect"] in TAINT_EFFECTS for t in group.get("taints", []))
    assert cfg["vpc"]["id"] == ENV["VPC_ID"]
    subnets = {s["id"] for s in cfg["vpc"]["subnets"]["private"].values()}
    assert subnets == {ENV["PRIVATE_SUBNET_A"], ENV["PRIVATE_SUBNET_B"]}


# ---------------------------------------------------------------- IAM policies
def bucket_arns(env: dict[str, str]) -> tuple[str, str]:
    return f"arn:aws:s3:::{env['INPUT_BUCKET']}", f"arn:aws:s3:::{env['OUTPUT_BUCKET']}"


@pytest.mark.parametrize("path", sorted(IAM.glob("*.json")), ids=lambda p: p.name)
def test_policy_is_least_privilege(path: Path) -> None:
    policy = render_json(path, ENV)
    assert policy["Version"] == "2012-10-17"
    input_arn, output_arn = bucket_arns(ENV)
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
        for r in resources:
            assert r != "*" and r.startswith((input_arn, output_arn)), r
            # A bucket ARN followed by anything but "/" would match other buckets.
            assert r in (input_arn, output_arn) or r.startswith((f"{input_arn}/", f"{output_arn}/"))
        if any(a.startswith(WRITE_ACTIONS) for a in actions):
            assert all(r.startswith(f"{output_arn}/{ENV['OUTPUT_PREFIX']}") for r in resources)
        if "s3:ListBucket" in actions:
            assert st["Condition"]["StringLike"]["s3:prefix"], "listing must be limited to a prefix"


RAY_CASES = [
    # (action, bucket, key or None for a bucket-level call, s3:prefix, allowed?)
    ("s3:ListBucket", "INPUT", None, "gut/2024-05/", True),
    ("s3:ListBucket", "INPUT", None, "skin/", False),
    ("s3:ListBucket", "INPUT", None, None, False),
    ("s3:GetObject", "INPUT", "gut/2024-05/s1.fastq.gz", None, True),
    ("s3:GetObject", "INPUT", "skin/s1.fastq.gz", None, False),
    ("s3:PutObject", "INPUT", "gut/2024-05/s1.fastq.gz", None, False),
    ("s3:DeleteObject", "INPUT", "gut/2024-05/s1.fastq.gz", None, False),
    ("s3:ListBucket", "OUTPUT", None, "gut/r42/_staging/", True),
    ("s3:ListBucket", "OUTPUT", None, "other/", False),
    ("s3:PutObject", "OUTPUT", "gut/r42/part-00000.parquet", None, True),
    ("s3:PutObject", "OUTPUT", "gut/r42/_manifest.json", None, True),
    ("s3:DeleteObject", "OUTPUT", "gut/r42/_staging/part-00000.parquet", None, True),
    ("s3:AbortMultipartUpload", "OUTPUT", "gut/r42/part-00001.parquet", None, True),
    ("s3:GetObject", "OUTPUT", "gut/r42/_manifest.json", None, True),
    ("s3:PutObject", "OUTPUT", "other/r1/part-00000.parquet", None, False),
    ("s3:PutBucketPolicy", "OUTPUT", None, None, False),
    ("s3:DeleteBucket", "OUTPUT", None, None, False),
]


def _request(env: dict[str, str], bucket: str, key: str | None) -> str:
    name = env[f"{bucket}_BUCKET"]
    return f"arn:aws:s3:::{name}" if key is None else f"arn:aws:s3:::{name}/{key}"


@pytest.mark.parametrize(("action", "bucket", "key", "prefix", "expected"), RAY_CASES)
def test_ray_policy_allows_the_etl_and_nothing_else(
    action: str, bucket: str, key: str | None, prefix: str | None, expected: bool
) -> None:
    policy = render_json(IAM / "vectorpipe-ray-s3.json", ENV)
    context = {"s3:prefix": [prefix]} if prefix is not None else {}
    assert allowed(policy, action, _request(ENV, bucket, key), context) is expected
    other = "arn:aws:s3:::somebody-else" + ("" if key is None else f"/{key}")
    assert allowed(policy, action, other, context) is False


def test_ray_policy_with_empty_prefixes_covers_whole_buckets_only() -> None:
    env = {**ENV, "INPUT_PREFIX": "", "OUTPUT_PREFIX": ""}
    policy = render_json(IAM / "vectorpipe-ray-s3.json", env)
    assert allowed(policy, "s3:GetObject", _request(env, "INPUT", "any/where.fa"))
    assert allowed(policy, "s3:ListBucket", _request(env, "INPUT", None), {"s3:prefix": [""]})
    assert allowed(policy, "s3:PutObject", _request(env, "OUTPUT", "r1/part-00000.parquet"))
    assert not allowed(policy, "s3:PutObject", _request(env, "INPUT", "r1/part-00000.parquet"))
    assert not allowed(policy, "s3:GetObject", f"arn:aws:s3:::{env['INPUT_BUCKET']}-2/x.fa")


def test_operator_policy_reads_manifests_only() -> None:
    policy = render_json(IAM / "vectorpipe-operator-s3.json", ENV)
    assert allowed(policy, "s3:GetObject", _request(ENV, "OUTPUT", "gut/r42/_manifest.json"))
    for action, key in [
        ("s3:GetObject", "gut/r42/part-00000.parquet"),
        ("s3:GetObject", "gut/r42/clustering/centroids.parquet"),
        ("s3:PutObject", "gut/r42/_manifest.json"),
        ("s3:DeleteObject", "gut/r42/_manifest.json"),
    ]:
        assert not allowed(policy, action, _request(ENV, "OUTPUT", key)), (action, key)
    assert not allowed(policy, "s3:GetObject", _request(ENV, "INPUT", "gut/_manifest.json"))


# ---------------------------------------------------------------- FSx objects
def test_fsx_objects_point_at_each_other() -> None:
    (sc,) = render_yaml_docs(FSX / "storageclass.yaml", ENV)
    (pv,) = render_yaml_docs(FSX / "persistentvolume.yaml", ENV)
    (pvc,) = render_yaml_docs(FSX / "persistentvolumeclaim.yaml", ENV)
    (pod,) = render_yaml_docs(FSX / "fsx-shell.yaml", ENV)
    # No dynamic provisioning: the file system exists and belongs to ParallelCluster.
    assert sc["provisioner"] == "kubernetes.io/no-provisioner"
    assert sc["reclaimPolicy"] == pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert (
        pv["spec"]["storageClassName"] == pvc["spec"]["storageClassName"] == sc["metadata"]["name"]
    )
    csi = pv["spec"]["csi"]
    assert csi["driver"] == "fsx.csi.aws.com"
    assert csi["volumeHandle"] == ENV["FSX_FILE_SYSTEM_ID"]
    assert csi["volumeAttributes"] == {
        "dnsname": ENV["FSX_DNS_NAME"],
        "mountname": ENV["FSX_MOUNT_NAME"],
    }
    assert pv["spec"]["accessModes"] == pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pv["spec"]["claimRef"] == {
        "namespace": pvc["metadata"]["namespace"],
        "name": pvc["metadata"]["name"],
    }
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pvc["metadata"]["namespace"] == ENV["PIPELINE_NAMESPACE"]
    (claim,) = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claim["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts[claim["name"]] == "/fsx"
