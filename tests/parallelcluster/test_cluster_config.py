"""The shipped ParallelCluster config, validated offline by aws-parallelcluster itself.

`validate.sh` loads the config with the package's marshmallow schema
(`ClusterSchema(...).load`) and runs its validator tree with every AWS call and
every non-loopback socket refused; validators that needed AWS are listed, not
trusted. Mutations prove each layer refuses what it should. The YAML-level
checks and the docs' manifests need no venv.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.parallelcluster.support import CONFIG, DOC, FACTS, PC_DIR, POST_INSTALL, VALIDATE

# What must run offline for the config's promises to be checked for real.
MUST_RUN_OFFLINE = {
    "EfaValidator",  # EFA only on EFA-capable instance types
    "EfaPlacementGroupValidator",
    "EfaSecurityGroupValidator",
    "InstanceTypePlacementGroupValidator",
    "FsxDraValidator",  # DRAs vs ImportPath/ExportPath
    "FsxPersistentOptionsValidator",
    "FsxStorageCapacityValidator",
    "SharedStorageMountDirValidator",
    "DuplicateMountDirValidator",
    "RootVolumeSizeValidator",
    "SchedulerValidator",
    "ClusterNameValidator",
}
# The validators that can only ask AWS (and so are reported, never trusted).
KNOWN_NEEDS_AWS = {
    "AdditionalIamPolicyValidator",  # iam:GetPolicy
    "AsyncTimedUrlValidator",  # s3:HeadObject on the post-install script
    "ComputeResourceLaunchTemplateValidator",  # ec2:RunInstances dry run
    "HeadNodeLaunchTemplateValidator",
    "FsxAutoImportValidator",  # s3:GetBucketLocation
    "InstanceTypeBaseAMICompatibleValidator",  # ec2:DescribeInstanceTypeOfferings
    "InstanceTypeValidator",
    "KeyPairValidator",  # ec2:DescribeKeyPairs
    "RegionValidator",  # fetches the supported-regions list over HTTPS
    "S3BucketUriValidator",  # s3:HeadBucket
}


def load_config() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG.read_text())
    assert isinstance(data, dict)
    return data


def queue(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    return next(q for q in cfg["Scheduling"]["SlurmQueues"] if q["Name"] == name)


def validate(*configs: Path) -> tuple[int, Any]:
    proc = subprocess.run(
        ["bash", str(VALIDATE), *map(str, configs)], capture_output=True, text=True, timeout=600
    )
    assert proc.stdout, f"validate.sh printed no report:\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


# --- offline validation with the package's own schema and validators -------------------
def _mutations() -> dict[str, tuple[Any, str]]:
    """name -> (mutator, text expected in the refusal)."""

    def fsx(c: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = c["SharedStorage"][0]["FsxLustreSettings"]
        return settings

    return {
        "unknown-key": (lambda c: c["HeadNode"].update(Bogus=1), "Unknown field"),
        "unknown-top-level-key": (lambda c: c.update(Scheduler="slurm"), "Unknown field"),
        "bad-os": (lambda c: c["Image"].update(Os="centos7"), "Must be one of"),
        "bad-subnet-id": (
            lambda c: c["HeadNode"]["Networking"].update(SubnetId="subnet-xyz"),
            "does not match",
        ),
        "bad-queue-update-strategy": (
            lambda c: c["Scheduling"]["SlurmSettings"].update(QueueUpdateStrategy="NOW"),
            "Must be one of",
        ),
        "efa-on-non-efa-instance": (
            lambda c: queue(c, "cpu")["ComputeResources"][0].update(Efa={"Enabled": True}),
            "does not support EFA",
        ),
        "efa-without-placement-group": (
            lambda c: queue(c, "mpi")["Networking"].pop("PlacementGroup"),
            "placement group for EFA-enabled compute resources",
        ),
        "fsx-unknown-deployment-type": (
            lambda c: fsx(c).update(DeploymentType="PERSISTENT_3"),
            "Must be one of",
        ),
        "fsx-bad-capacity": (
            lambda c: fsx(c).update(StorageCapacity=1000),
            "1,200 GB or increments of 2,400 GB",
        ),
        "fsx-import-path-with-dra": (
            lambda c: fsx(c).update(ImportPath="s3://vectorpipe-runs"),
            "import and export path can not be used",
        ),
        "fsx-bad-auto-export-policy": (
            lambda c: fsx(c)["DataRepositoryAssociations"][0].update(AutoExportPolicy=["ALL"]),
            "Must be one of",
        ),
        "denied-custom-slurm-setting": (
            lambda c: c["Scheduling"]["SlurmSettings"].update(
                CustomSlurmSettings=[{"SlurmctldParameters": "enable_configless"}]
            ),
            "not allowed: SlurmctldParameters",
        ),
        "duplicate-mount-dir": (
            lambda c: c["SharedStorage"][1].update(MountDir="/fsx"),
            "/fsx",
        ),
    }


@pytest.fixture(scope="module")
def reports(pcluster_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One validate.sh run over the shipped config and every mutation (a fork each)."""
    tmp = tmp_path_factory.mktemp("mutations")
    base = load_config()
    paths = {"shipped": CONFIG}
    for name, (mutate, _) in _mutations().items():
        cfg = copy.deepcopy(base)
        mutate(cfg)
        paths[name] = tmp / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(cfg))
    code, out = validate(*paths.values())
    assert code == 1  # some are invalid
    return {name: out[str(path)] for name, path in paths.items()}


@pytest.mark.slow
def test_shipped_config_is_valid_offline(reports: dict[str, Any]) -> None:
    report = reports["shipped"]
    assert report["pcluster_version"] == "3.16.1"
    assert report["schema"] == {"ok": True}, report["schema"]
    v = report["validators"]
    problems = [f for f in v["findings"] if f["level"] in ("ERROR", "WARNING")]
    assert problems == [], problems
    assert report["valid"] is True
    missing = MUST_RUN_OFFLINE - set(v["ran_offline"])
    assert not missing, f"validators that no longer run offline: {missing}"
    # Nothing new started needing AWS without this test (and the docs) saying so,
    # and nothing outside a validator (e.g. the schema load) reached for AWS.
    assert set(v["needs_aws"]) <= KNOWN_NEEDS_AWS, v["needs_aws"]
    assert len(v["ran_offline"]) >= 50
    print(
        f"offline: {len(v['ran_offline'])} validators ran, "
        f"{len(v['needs_aws'])} need AWS: {sorted(v['needs_aws'])}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_mutations()))
def test_mutated_config_is_refused(reports: dict[str, Any], name: str) -> None:
    r = reports[name]
    expected = _mutations()[name][1]
    assert r["valid"] is False, f"{name} was accepted"
    if r["schema"]["ok"]:
        text = json.dumps([f for f in r["validators"]["findings"] if f["level"] == "ERROR"])
    else:
        text = json.dumps(r["schema"]["errors"])
    assert expected in text, f"{name}: {expected!r} not in {text}"


@pytest.mark.slow
def test_validation_never_reaches_aws(pcluster_venv: Path, tmp_path: Path) -> None:
    """Even without the facts file (so every EC2 lookup is attempted) nothing leaves."""
    proc = subprocess.run(
        ["bash", str(VALIDATE), "--no-facts", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(proc.stdout)
    assert report["schema"] == {"ok": True}
    attempts = [a for calls in report["validators"]["needs_aws"].values() for a in calls]
    assert any(a.startswith("ec2:") for a in attempts)  # they were tried ... and refused
    assert "facts_from_file" in report and report["facts_from_file"]["InstanceTypes"] == []


# --- what the config says, read as YAML ------------------------------------------------
def test_config_shape() -> None:
    cfg = load_config()
    assert cfg["Image"]["Os"] in ("alinux2023", "ubuntu2204", "ubuntu2404")
    assert cfg["Scheduling"]["Scheduler"] == "slurm"
    mpi, cpu = queue(cfg, "mpi"), queue(cfg, "cpu")
    assert mpi["Networking"]["PlacementGroup"] == {"Enabled": True}
    assert len(mpi["Networking"]["SubnetIds"]) == 1  # a placement group is one AZ
    (cr,) = mpi["ComputeResources"]
    assert cr["Efa"] == {"Enabled": True} and cr["MinCount"] == 0
    facts = json.loads(FACTS.read_text())["InstanceTypes"]
    assert facts[cr["InstanceType"]]["NetworkInfo"]["EfaSupported"] is True
    assert all("Efa" not in r for r in cpu["ComputeResources"])
    assert "PlacementGroup" not in cpu["Networking"]
    storage = {s["MountDir"]: s for s in cfg["SharedStorage"]}
    fsx = storage["/fsx"]["FsxLustreSettings"]
    assert fsx["DeploymentType"] == "PERSISTENT_2"
    assert "ImportPath" not in fsx and "ExportPath" not in fsx
    (dra,) = fsx["DataRepositoryAssociations"]
    assert dra["DataRepositoryPath"].startswith("s3://")
    assert storage["/shared"]["StorageType"] in ("Efs", "Ebs")
    head = cfg["HeadNode"]
    assert head["Imds"]["Secured"] is True
    assert all(
        p["Policy"].startswith("arn:aws:iam::") for p in head["Iam"]["AdditionalIamPolicies"]
    )
    assert all(a["EnableWriteAccess"] is False for a in head["Iam"]["S3Access"])


def _custom_actions(cfg: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(where, node type, args) of every custom action that runs post-install.sh."""
    found = []
    for event, action in cfg["HeadNode"]["CustomActions"].items():
        found.append((f"HeadNode/{event}", "HeadNode", action))
    for q in cfg["Scheduling"]["SlurmQueues"]:
        for event, action in q.get("CustomActions", {}).items():
            found.append((f"{q['Name']}/{event}", "ComputeFleet", action))
    out = []
    for where, node_type, action in found:
        assert action["Script"].startswith("s3://") and action["Script"].endswith(
            "/post-install.sh"
        )
        out.append((where, node_type, [str(a) for a in action.get("Args", [])]))
    return out


def test_config_custom_action_args_are_accepted_by_the_script(tmp_path: Path) -> None:
    """Every Args list in the config parses in post-install.sh (a dry render)."""
    actions = _custom_actions(load_config())
    assert {w for w, _, _ in actions} >= {"HeadNode/OnNodeConfigured", "mpi/OnNodeConfigured"}
    for where, node_type, args in actions:
        root = tmp_path / where.replace("/", "-")
        proc = subprocess.run(
            ["bash", str(POST_INSTALL), "--dest-root", str(root), "--node-type", node_type, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"{where}: {args}\n{proc.stderr}"
        if node_type == "HeadNode":
            assert "--secret-id" in args
            nginx = (root / "etc/vectorpipe/slurmrestd-tls.nginx.conf").read_text()
            for cidr in args[args.index("--allowed-cidr") + 1 :: 2][:1]:
                assert f"allow {cidr};" in nginx


def test_iam_policies_are_least_privilege() -> None:
    for name, actions in (
        (
            "slurm-token-writer.json",
            {"secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret"},
        ),
        ("slurm-token-reader.json", {"secretsmanager:GetSecretValue"}),
    ):
        doc = json.loads((PC_DIR / "iam" / name).read_text())
        (stmt,) = doc["Statement"]
        got = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        assert stmt["Effect"] == "Allow" and set(got) == actions, name
        assert "*" not in stmt["Resource"] and stmt["Resource"].startswith(
            "arn:aws:secretsmanager:"
        ), name
    cfg = load_config()
    secret = cfg["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Args"]
    writer = json.loads((PC_DIR / "iam" / "slurm-token-writer.json").read_text())
    assert writer["Statement"][0]["Resource"] == secret[secret.index("--secret-id") + 1]


# --- the manifests in docs/parallelcluster.md ------------------------------------------
def _doc_yaml() -> list[dict[str, Any]]:
    text = DOC.read_text()
    docs: list[dict[str, Any]] = []
    for block in text.split("```yaml\n")[1:]:
        docs.extend(d for d in yaml.safe_load_all(block.split("```", 1)[0]) if d)
    return docs


def test_docs_manifests_parse_and_agree() -> None:
    docs = _doc_yaml()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d), d
        by_kind.setdefault(d["kind"], []).append(d)
    assert {"ExternalSecret", "SecretStore", "CronJob", "Role", "SlurmJob"} <= set(by_kind)

    (es,) = by_kind["ExternalSecret"]
    assert es["apiVersion"].startswith("external-secrets.io/")
    assert es["spec"]["target"]["name"] == "slurm-jwt"
    mapping = {d["secretKey"]: d["remoteRef"]["property"] for d in es["spec"]["data"]}
    # The JSON keys post-install.sh writes (no dots: ESO reads "." as a path).
    assert mapping == {"token": "token", "ca.crt": "ca_crt"}
    script = POST_INSTALL.read_text()
    assert "{token: $token, ca_crt: $ca," in script

    (cron,) = by_kind["CronJob"]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:2] == ["python", "-c"]
    compile(container["command"][2], "cronjob-sync", "exec")  # the embedded sync program
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    (role,) = by_kind["Role"]
    (rule,) = role["rules"]
    assert rule["resourceNames"] == ["slurm-jwt"] and "list" not in rule["verbs"]

    from vectorpipe_api.slurmjob import SlurmJobSpec

    (job,) = by_kind["SlurmJob"]
    spec = SlurmJobSpec.model_validate(job["spec"])
    assert spec.slurm.endpoint is not None and spec.slurm.endpoint.startswith("https://")
    assert spec.slurm.token_secret_ref is not None
    assert spec.slurm.token_secret_ref.name == "slurm-jwt"
    assert spec.slurm.ca_bundle_secret_ref is not None
    assert spec.slurm.ca_bundle_secret_ref.key == "ca.crt"
    assert not spec.slurm.insecure_skip_verify
    assert spec.partition == queue(load_config(), "mpi")["Name"]
