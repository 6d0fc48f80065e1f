"""Validate a ParallelCluster 3 cluster config offline with aws-parallelcluster's own code.

Runs inside the venv that `validate.sh` builds (aws-parallelcluster pins packages
that clash with VectorPipe's, so it never shares a venv with it). Two stages, the
same two that `pcluster create-cluster --dryrun true` runs, minus AWS:

1. schema: `pcluster.models.common.parse_config` + `ClusterSchema(name).load(...)`,
   the marshmallow schema pcluster applies first: unknown keys, types, enums,
   regexes, ranges, required keys and the cross-field rules written in the schema.
2. semantic validators: `config.validate(...)`, pcluster's own validator tree.
   No AWS API is reachable: every botocore call is refused before it is signed
   or sent, and every socket to a non-loopback address (or name) is refused.
   A validator that tried to call AWS is reported under `needs_aws` and its
   findings are dropped, since it could not check anything; so is a resource
   whose validator *registration* needed AWS. Validators that finished without
   touching AWS are real checks: their ERRORs fail the run.
   The few AWS facts the config's placeholders stand for (instance types,
   subnets, security groups) can come from a JSON file in the EC2 API's own
   shapes (`--facts`); they are fed through pcluster's own caches and its
   extra-instance-type-data hook, so e.g. its EFA validators run offline.

Prints one JSON report on stdout (an object keyed by path when given several
configs, each validated in a fresh forked child). Exit status: 0 all valid,
1 any invalid, 2 usage error.
"""

from __future__ import annotations

import argparse
import contextvars
import ipaddress
import json
import logging
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Credentials and region are fixed before botocore is imported: no profile, no
# instance metadata (169.254.169.254), no real keys can ever be picked up, and
# the endpoint is a closed loopback port in case anything slips past the block.
_OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAOFFLINEVALIDATION",
    "AWS_SECRET_ACCESS_KEY": "offline-validation-only",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}
for _k in (
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
):
    os.environ.pop(_k, None)
os.environ.update(_OFFLINE_ENV)

OUTSIDE = "<outside any validator>"
_current: contextvars.ContextVar[str] = contextvars.ContextVar("current_validator", default=OUTSIDE)
NEEDS_AWS: dict[str, set[str]] = {}
RAN: set[str] = set()
ANSWERED: list[str] = []
IMAGES: dict[str, dict[str, Any]] = {}


def _needs(who: str, what: str) -> None:
    NEEDS_AWS.setdefault(who, set()).add(what)


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_offline_refusal(exc: BaseException) -> bool:
    """An error raised (or wrapped) because this harness refused an AWS call or a socket."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if "offline validation:" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _install_network_guard() -> None:
    """Refuse every non-loopback connection and name lookup in this process."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def _check(address: Any) -> None:
        if isinstance(address, str | bytes):  # AF_UNIX path
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            _needs(_current.get(), f"net:{host}")
            raise ConnectionRefusedError(f"offline validation: connection to {host} refused")

    def connect(self: socket.socket, address: Any) -> None:
        _check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            _needs(_current.get(), f"dns:{host}")
            raise socket.gaierror(socket.EAI_NONAME, f"offline validation: no lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def _install_aws_block() -> None:
    """Make every botocore API call fail before signing, and remember who asked."""
    from botocore.client import BaseClient
    from botocore.exceptions import BotoCoreError

    class OfflineBlockedError(BotoCoreError):
        fmt = "offline validation: AWS API call {operation} was not made"

    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        service = self.meta.service_model.service_name
        ids = api_params.get("ImageIds") or []
        if (
            (service, operation_name) == ("ec2", "DescribeImages")
            and ids
            and set(ids) <= set(IMAGES)
        ):
            # The one call answered from the facts file: the AMI's own description.
            ANSWERED.append(f"{_current.get()}: ec2:DescribeImages {ids}")
            return {"Images": [IMAGES[i] for i in ids]}
        _needs(_current.get(), f"{service}:{operation_name}")
        raise OfflineBlockedError(operation=operation_name)

    BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]


def _install_validator_tracking() -> None:
    """Tag each validator run (sync, async, and the threads async ones use) with its type."""
    from pcluster.config.common import Resource
    from pcluster.utils import AsyncUtils
    from pcluster.validators.common import (
        AsyncValidator,
        FailureLevel,
        ValidationResult,
        Validator,
    )

    real_execute = Validator.execute
    real_execute_async = AsyncValidator.execute_async
    real_validate_self = Resource._validate_self

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        RAN.add(self.type)
        token = _current.set(self.type)
        try:
            return real_execute(self, *args, **kwargs)
        finally:
            _current.reset(token)

    async def execute_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        RAN.add(self.type)
        _current.set(self.type)  # this task runs in its own copy of the context
        try:
            return await real_execute_async(self, *args, **kwargs)
        except Exception as exc:
            # pcluster gathers async validators without return_exceptions, so one
            # refused call would abort the whole tree: contain it here.
            if not _is_offline_refusal(exc):
                return [ValidationResult(str(exc), FailureLevel.ERROR, self.type)]
            _needs(self.type, f"raised:{type(exc).__name__}")
            return []

    def _validate_self(self: Any, context: Any, suppressors: Any) -> None:
        # Some resources compute validator arguments from AWS (e.g. subnet -> AZ)
        # while registering them; then none of that resource's own validators run.
        who = f"<registration of {type(self).__name__} {getattr(self, 'name', '') or ''}>".replace(
            " >", ">"
        )
        token = _current.set(who)
        try:
            real_validate_self(self, context, suppressors)
        except Exception as exc:
            if not _is_offline_refusal(exc):
                raise
            _needs(who, f"raised:{type(exc).__name__}")
        finally:
            _current.reset(token)

    class _ContextExecutor(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            ctx = contextvars.copy_context()
            return super().submit(ctx.run, fn, *args, **kwargs)

    Validator.execute = execute  # type: ignore[method-assign]
    AsyncValidator.execute_async = execute_async  # type: ignore[method-assign]
    Resource._validate_self = _validate_self  # type: ignore[method-assign]
    AsyncUtils._thread_pool_executor = _ContextExecutor()


def validate(config_path: str, cluster_name: str, facts: dict[str, Any] | None) -> dict[str, Any]:
    _install_network_guard()
    _install_aws_block()
    _install_validator_tracking()

    from marshmallow import ValidationError
    from pcluster.aws.aws_api import AWSApi
    from pcluster.models.common import parse_config
    from pcluster.schemas.cluster_schema import ClusterSchema
    from pcluster.utils import get_installed_version
    from pcluster.validators.common import FailureLevel, ValidatorContext

    with open(config_path, encoding="utf-8") as fh:
        text = fh.read()
    report: dict[str, Any] = {
        "pcluster_version": get_installed_version(),
        "config": config_path,
        "cluster_name": cluster_name,
    }
    config_dict = parse_config(text)
    region = config_dict.get("Region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    os.environ["AWS_DEFAULT_REGION"] = region
    report["region"] = region

    try:
        config = ClusterSchema(cluster_name=cluster_name).load(config_dict)
    except ValidationError as exc:
        report.update(schema={"ok": False, "errors": exc.messages}, valid=False)
        return report
    report["schema"] = {"ok": True}

    facts = facts or {}
    ec2 = AWSApi.instance().ec2
    ec2.additional_instance_types_data = dict(facts.get("InstanceTypes", {}))
    for subnet in facts.get("Subnets", []):
        ec2.subnets_cache[subnet["SubnetId"]] = subnet
    for group in facts.get("SecurityGroups", []):
        ec2.security_groups_cache[group["GroupId"]] = group
    IMAGES.update({img["ImageId"]: img for img in facts.get("Images", [])})
    if facts.get("OfficialAmi"):
        # pcluster's create flow resolves this with DescribeImages and sets it
        # on the config before validating; offline it comes from the facts.
        config.official_ami = facts["OfficialAmi"]
    report["facts_from_file"] = {
        "OfficialAmi": facts.get("OfficialAmi"),
        "InstanceTypes": sorted(ec2.additional_instance_types_data),
        "Subnets": sorted(ec2.subnets_cache),
        "SecurityGroups": sorted(ec2.security_groups_cache),
        "Images": sorted(IMAGES),
    }

    results = config.validate([], ValidatorContext())

    findings: list[dict[str, str]] = []
    dropped = 0
    for r in results:
        if r.validator_type in NEEDS_AWS:
            dropped += 1
            continue
        findings.append(
            {"validator": r.validator_type, "level": str(r.level), "message": r.message}
        )
    errors = [f for f in findings if f["level"] == str(FailureLevel.ERROR)]
    report["validators"] = {
        "ran_offline": sorted(RAN - set(NEEDS_AWS)),
        "needs_aws": {k: sorted(v) for k, v in sorted(NEEDS_AWS.items())},
        "findings": findings,
        "dropped_findings_of_needs_aws": dropped,
        "aws_calls_answered_from_facts": sorted(set(ANSWERED)),
    }
    report["valid"] = not errors
    return report


def _warm_up() -> None:
    """Pay once, before forking, for what every child would otherwise redo: the
    imports validate() needs and botocore's service models for the clients
    pcluster creates (loading a model is local JSON parsing, no network)."""
    import boto3
    import pcluster.aws.aws_api
    import pcluster.models.common
    import pcluster.schemas.cluster_schema
    import pcluster.validators.common  # noqa: F401

    for service in ("ec2", "fsx", "iam", "s3"):
        boto3.client(service, region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")


def _validate_in_child(
    config: str, cluster_name: str, facts: dict[str, Any] | None
) -> dict[str, Any]:
    """Validate in a forked child, so every config starts from clean pcluster state
    (caches, singletons) while the slow imports are paid once in the parent."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            report = validate(config, cluster_name, facts)
        except Exception as exc:  # report, never hang the parent
            report = {"config": config, "valid": False, "harness_error": repr(exc)}
        with os.fdopen(write_fd, "w") as out:
            json.dump(report, out, default=str)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    return (
        json.loads(data)
        if data
        else {"config": config, "valid": False, "harness_error": "no report"}
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("configs", nargs="+", metavar="CONFIG", help="cluster config YAML file(s)")
    ap.add_argument("--cluster-name", default="vectorpipe")
    ap.add_argument("--facts", help="JSON with InstanceTypes / Subnets / SecurityGroups / Images")
    args = ap.parse_args(argv)
    facts = None
    if args.facts:
        with open(args.facts, encoding="utf-8") as fh:
            facts = json.load(fh)
    # pcluster logs every refused boto3 call at ERROR; the report says it better.
    logging.getLogger("pcluster").setLevel(logging.CRITICAL)
    _warm_up()

    reports = {c: _validate_in_child(c, args.cluster_name, facts) for c in args.configs}
    out: Any = reports[args.configs[0]] if len(args.configs) == 1 else reports
    json.dump(out, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0 if all(r.get("valid") for r in reports.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
