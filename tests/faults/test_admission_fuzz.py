"""Fault 12: 1,000 generated invalid VectorPipelines refused, 1,000 valid ones accepted.

Hypothesis draws specs; each is sent to the real kube-apiserver as a
server-side dry-run create (`dryRun=All`, strict field validation, exactly what
`kubectl apply --dry-run=server` sends), so the CRD's OpenAPI schema and CEL
rules decide, not a copy of them. A valid spec is accepted by the API server
and by the pydantic models `vectorpipe run` uses. An invalid spec is a valid
one with one mutation from a catalogue (out-of-range numbers, unknown enums,
malformed URIs and quantities, unknown fields, wrong types, missing required
fields, every cross-field CEL rule, bad names); the API server must refuse it
with a message that names the offending field or states the rule, and the
local validator must refuse it too (where it has the same rule). Derandomized,
so CI draws the same 2,000 specs on every run.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from tests.support.controlplane import ControlPlane
from vectorpipe_api.pipeline import PipelineDocument

pytestmark = [pytest.mark.faults, pytest.mark.k8s, pytest.mark.timeout(900)]

EXAMPLES = 1000
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# -- valid specs ---------------------------------------------------------------------------
# Built from character sets rather than st.from_regex, which is many times slower.
LOWER = "abcdefghijklmnopqrstuvwxyz"
ALNUM = LOWER + "0123456789"
label = st.text(ALNUM, min_size=1, max_size=12)
bucket = st.builds(
    lambda a, mid, z: a + mid + z,
    st.sampled_from(ALNUM),
    st.text(ALNUM + "-", min_size=1, max_size=20),
    st.sampled_from(ALNUM),
)
key = st.lists(label, min_size=0, max_size=3).map(lambda parts: "/".join(parts))
uri = st.one_of(
    st.builds(lambda b, k: f"s3://{b}/{k}", bucket, key),
    st.builds(lambda k: f"/fsx/{k}", key),
    st.builds(lambda k: f"file:///data/{k}", key),
)
quantity = st.builds(
    lambda n, unit: f"{n}{unit}",
    st.integers(1, 512),
    st.sampled_from(["", "m", "Mi", "Gi", "k", "G"]),
)
time_limit = st.one_of(
    st.integers(1, 10000).map(str),
    st.builds(lambda h, m, s: f"{h:02d}:{m:02d}:{s:02d}", st.integers(0, 99), st.integers(0, 59), st.integers(0, 59)),
    st.builds(lambda d, h: f"{d}-{h:02d}:00:00", st.integers(0, 30), st.integers(0, 23)),
)  # fmt: skip


@st.composite
def embeddings(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(st.sampled_from(["kmer", "hashed", "minhash"]))
    out: dict[str, Any] = {"method": method, "canonical": draw(st.booleans())}
    out["k"] = draw(st.integers(2, 8) if method == "kmer" else st.integers(2, 31))
    if method == "kmer":
        out["transform"] = draw(st.sampled_from(["none", "clr"]))
    if method == "hashed" and draw(st.booleans()):
        out["dim"] = draw(st.integers(2, 65536))
    if method == "minhash" and draw(st.booleans()):
        out["sketchSize"] = draw(st.integers(2, 4096))
    if draw(st.booleans()):
        out["seed"] = draw(st.integers(0, 2**31 - 1))
    return out


@st.composite
def pipelines(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(LOWER)) + draw(st.text(ALNUM + "-", max_size=40))
    name = name if name[-1] != "-" else name + "x"
    inp = draw(uri)
    out = draw(uri.filter(lambda u: u != inp))
    slurm: dict[str, Any] = {
        "nodes": draw(st.integers(1, 10000)),
        "ntasksPerNode": draw(st.integers(1, 1024)),
        "timeLimit": draw(time_limit),
    }
    if draw(st.booleans()):
        slurm["endpoint"] = "https://head-node:8082"
        slurm["tokenSecretRef"] = {"name": draw(label)}
    if draw(st.booleans()):
        slurm["partition"] = draw(st.text(ALNUM + "ABCXYZ_.-", min_size=1, max_size=20))
    spec: dict[str, Any] = {
        "input": {"uri": inp, "format": draw(st.sampled_from(["auto", "fastq", "fasta"]))},
        "embedding": draw(embeddings()),
        "output": {
            "uri": out,
            "format": draw(st.sampled_from(["parquet", "lance"])),
            "shards": draw(st.integers(1, 100000)),
        },
        "ray": {
            "workers": {
                "replicas": draw(st.integers(0, 1000)),
                "cpu": draw(quantity),
                "memory": draw(quantity),
            },
            "batchSize": draw(st.integers(256, 4_194_304)),
            "backoffLimit": draw(st.integers(0, 10)),
        },
        "hpc": {
            "slurm": slurm,
            "app": {
                "clusters": draw(st.integers(2, 100000)),
                "maxIterations": draw(st.integers(1, 100000)),
                "tolerance": draw(st.floats(0.0, 1.0)),
                "seed": draw(st.integers(0, 2**31 - 1)),
            },
        },
    }
    return {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": name},
        "spec": spec,
    }


# -- one mutation each, with the message the API server must give --------------------------
Mutation = Callable[[dict[str, Any], st.DrawFn], str]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return apply


def out_of_range(body: dict[str, Any], draw: st.DrawFn) -> str:
    field, lo, hi = draw(
        st.sampled_from(
            [
                ("spec.output.shards", 1, 100000),
                ("spec.hpc.slurm.nodes", 1, 10000),
                ("spec.hpc.slurm.ntasksPerNode", 1, 1024),
                ("spec.hpc.app.clusters", 2, 100000),
                ("spec.hpc.app.maxIterations", 1, 100000),
                ("spec.ray.workers.replicas", 0, 1000),
                ("spec.ray.batchSize", 256, 4_194_304),
                ("spec.ray.backoffLimit", 0, 10),
                ("spec.embedding.seed", 0, 2**31 - 1),
            ]
        )
    )
    value = draw(st.one_of(st.integers(-(2**40), lo - 1), st.integers(hi + 1, 2**40)))
    _set(field, value)(body)
    return f"{field}: Invalid value: {value}: {field} in body should be"


def bad_enum(body: dict[str, Any], draw: st.DrawFn) -> str:
    field, allowed = draw(
        st.sampled_from(
            [
                ("spec.input.format", {"auto", "fastq", "fasta"}),
                ("spec.output.format", {"parquet", "lance"}),
                ("spec.embedding.method", {"kmer", "hashed", "minhash"}),
            ]
        )
    )
    value = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'), max_size=12)
                 .filter(lambda v: v not in allowed))  # fmt: skip
    _set(field, value)(body)
    return f'{field}: Unsupported value: "{value}"' if value else f"{field}: Unsupported value"


HOSTILE_URIS = [
    "gs://bucket/reads/", "http://evil.example/reads/", "reads/relative", "", "s3://", "s3://A_B/x",
    "s3://x/", "file://etc/passwd", "ftp://host/x", "~/reads", "../../etc/passwd", " /fsx/a",
]  # fmt: skip


def bad_uri(body: dict[str, Any], draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(["spec.input.uri", "spec.output.uri"]))
    value = draw(st.sampled_from(HOSTILE_URIS))
    _set(field, value)(body)
    return f"{field} in body should match '^(s3://"


def bad_pattern(body: dict[str, Any], draw: st.DrawFn) -> str:
    field = draw(
        st.sampled_from(
            ["spec.ray.workers.memory", "spec.ray.workers.cpu", "spec.hpc.slurm.timeLimit"]
        )
    )
    value = draw(st.sampled_from(["lots", "1.5.5", "-1", "1 Gi", "12:00", "soon", "1e3", "$(id)"]))
    _set(field, value)(body)
    return f"{field} in body should match"


def unknown_field(body: dict[str, Any], draw: st.DrawFn) -> str:
    parent = draw(st.sampled_from(["spec", "spec.embedding", "spec.output", "spec.hpc.slurm"]))
    name = draw(st.sampled_from(LOWER)) + draw(st.text(LOWER + "ABQZ", min_size=2, max_size=10))
    name += "X"
    _set(f"{parent}.{name}", 1)(body)
    return f'unknown field "{parent}.{name}"'


def wrong_type(body: dict[str, Any], draw: st.DrawFn) -> str:
    field, want = draw(
        st.sampled_from(
            [
                ("spec.output.shards", "integer"),
                ("spec.hpc.slurm.nodes", "integer"),
                ("spec.embedding.canonical", "boolean"),
                ("spec.input", "object"),
            ]
        )
    )
    _set(field, draw(st.sampled_from(["eight", "true-ish", "[]"])))(body)
    return f'{field}: Invalid value: "string": {field} in body must be of type {want}'


def missing_required(body: dict[str, Any], draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(["input", "output"]))
    del body["spec"][field]
    return f"spec.{field}: Required value"


def cross_field(body: dict[str, Any], draw: st.DrawFn) -> str:
    rule = draw(st.sampled_from(["kmer-k", "clr", "dim", "sketch", "same-uri", "token"]))
    e = body["spec"]["embedding"]
    if rule == "kmer-k":
        e.update(method="kmer", k=draw(st.integers(9, 31)))
        e.pop("dim", None), e.pop("sketchSize", None)
        return "kmer embeddings need 2 <= k <= 8"
    if rule == "clr":
        e.update(method=draw(st.sampled_from(["hashed", "minhash"])), transform="clr")
        e.pop("dim", None), e.pop("sketchSize", None)
        return "transform is only valid for kmer"
    if rule == "dim":
        e.update(method=draw(st.sampled_from(["kmer", "minhash"])), k=4, dim=64)
        e.pop("transform", None), e.pop("sketchSize", None)
        return "dim is only valid for method hashed"
    if rule == "sketch":
        e.update(method=draw(st.sampled_from(["kmer", "hashed"])), k=4, sketchSize=64)
        e.pop("transform", None), e.pop("dim", None)
        return "sketchSize is only valid for method minhash"
    if rule == "same-uri":
        body["spec"]["output"]["uri"] = body["spec"]["input"]["uri"]
        return "output.uri must differ from input.uri"
    slurm = body["spec"]["hpc"]["slurm"]
    slurm["endpoint"] = "https://head-node:8082"
    slurm.pop("tokenSecretRef", None)
    return "hpc.slurm.tokenSecretRef is required when hpc.slurm.endpoint is set"


def bad_name(body: dict[str, Any], draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        body["metadata"]["name"] = "a" + draw(st.text(ALNUM, min_size=43, max_size=62))
        return "metadata.name plus '-' and spec.runId must be at most 43 characters"
    body["metadata"]["name"] = draw(st.sampled_from("0123456789")) + draw(
        st.text(ALNUM, max_size=20)
    )
    return "metadata.name must start with a letter"


MUTATIONS: list[Mutation] = [
    out_of_range, bad_enum, bad_uri, bad_pattern, unknown_field, wrong_type,
    missing_required, cross_field, bad_name,
]  # fmt: skip
# The API server checks these names; the local validator only checks DNS-1123 labels.
ADMISSION_ONLY = {bad_name}


@st.composite
def invalid_pipelines(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    body = copy.deepcopy(draw(pipelines()))
    mutation = draw(st.sampled_from(MUTATIONS))
    return mutation.__name__, body, mutation(body, draw)


# -- the API server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(crds: ControlPlane) -> Iterator[client.CustomObjectsApi]:
    api_client = config.new_client_from_config(config_file=str(crds.kubeconfig))
    yield client.CustomObjectsApi(api_client)
    api_client.close()


def dry_run(api: client.CustomObjectsApi, ns: str, body: dict[str, Any]) -> str | None:
    """None if the API server would create it, else its message."""
    try:
        api.create_namespaced_custom_object(
            "vectorpipe.io", "v1alpha1", ns, "vectorpipelines", body,
            dry_run="All", field_validation="Strict",
        )  # fmt: skip
    except ApiException as e:
        status, text = e.status, e.body
    else:
        return None
    # 422: schema and CEL; 400: strict field validation. Never a 5xx or a timeout.
    assert status in (400, 422), (status, text)
    return str(json.loads(text)["message"])


def locally_valid(body: dict[str, Any]) -> bool:
    try:
        PipelineDocument.model_validate(body)
    except ValidationError:
        return False
    return True


def test_generated_valid_pipelines_are_accepted(
    api: client.CustomObjectsApi, namespace: str
) -> None:
    tried: list[str] = []

    @FUZZ
    @given(body=pipelines())
    def check(body: dict[str, Any]) -> None:
        tried.append(body["metadata"]["name"])
        assert dry_run(api, namespace, body) is None, json.dumps(body)
        assert locally_valid(body), json.dumps(body)

    check()
    print(f"valid pipelines accepted: {len(tried)}")
    assert len(tried) >= EXAMPLES
    # The namespace holds nothing: dry runs never persist.
    assert (
        api.list_namespaced_custom_object(
            "vectorpipe.io", "v1alpha1", namespace, "vectorpipelines"
        )["items"]
        == []
    )


def test_generated_invalid_pipelines_are_refused_with_a_clear_message(
    api: client.CustomObjectsApi, namespace: str
) -> None:
    kinds: Counter[str] = Counter()

    @FUZZ
    @given(case=invalid_pipelines())
    def check(case: tuple[str, dict[str, Any], str]) -> None:
        kind, body, expected = case
        kinds[kind] += 1
        message = dry_run(api, namespace, body)
        assert message is not None, f"{kind} accepted: {json.dumps(body)}"
        assert expected in message, (kind, expected, message)
        if kind not in {m.__name__ for m in ADMISSION_ONLY}:
            assert not locally_valid(body), f"{kind} passes the local validator: {json.dumps(body)}"

    check()
    print(f"invalid pipelines refused: {sum(kinds.values())} {dict(kinds)}")
    assert sum(kinds.values()) >= EXAMPLES
    assert set(kinds) == {m.__name__ for m in MUTATIONS}
