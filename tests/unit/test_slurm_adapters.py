"""Every slurmrestd adapter against fixtures that follow its version's published schema.

The fixtures in ``fixtures/slurm/<version>/`` were written from Slurm's own
sources (SchedMD/slurm), one release per version:

- v0.0.38: ``src/plugins/openapi/v0.0.38/openapi.json`` and ``jobs.c`` at tag
  slurm-22-05-8-1; the job objects and ``openapi.json`` are captured from a live
  slurmrestd 22.05.8 (the one ``tests/slurm`` runs) with values edited.
- v0.0.39: ``src/plugins/openapi/v0.0.39/openapi.json`` plus
  ``src/plugins/data_parser/v0.0.39/parsers.c`` at slurm-23-02-7-1.
- v0.0.40: ``src/plugins/data_parser/v0.0.40/parsers.c`` and
  ``doc/html/rest_api.shtml`` at slurm-23-11-10-1.
- v0.0.41: the same two files at slurm-24-05-8-1.
- v0.0.42: the same two files at slurm-24-11-7-1 (and slurm-25-05-8-1 for the
  25.05 OpenAPI document that also offers v0.0.43).

All versions describe the same seven jobs, so every adapter must normalise them
to the same `JobInfo` values (v0.0.38/39 cannot say "COMPLETED but still
completing", only "COMPLETING"). Client behaviour (errors, retries, token
rotation) runs over httpx's MockTransport with these fixtures as answers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from slurm_bridge.client import JobRequest, SlurmRestClient, pick_version, versions_in_openapi
from slurm_bridge.client.auth import check_token, file_token
from slurm_bridge.client.models import decode_wait_status
from slurm_bridge.client.versions import ADAPTERS, SUPPORTED_VERSIONS, adapter_for
from slurm_bridge.errors import SlurmAuthError, SlurmNotFound, SlurmRejected, SlurmUnavailable

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
VERSIONS = ["v0.0.38", "v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42"]
START = dt.datetime.fromtimestamp(1700000005, tz=dt.UTC)
END = dt.datetime.fromtimestamp(1700000047, tz=dt.UTC)
# A token whose payload is {"exp": 4102444800, "iat": 1700000000, "sun": "root"} (year 2100).
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDAsImlhdCI6MTcwMDAwMDAwMCwic3VuIjoicm9vdCJ9.c2ln"
EXPIRED = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDAsInN1biI6InJvb3QifQ.c2ln"

REQUEST = JobRequest(
    script="#!/bin/bash\nmpirun -n 8 python -m vectorpipe_workloads.kmeans\n",
    name="vp-kmeans",
    comment="uid-123",
    nodes=2,
    ntasks=8,
    ntasks_per_node=4,
    cpus_per_task=2,
    partition="compute",
    time_limit=60,
    account="genomics",
    qos="normal",
    environment={"OMP_NUM_THREADS": "1"},
    current_working_directory="/fsx/runs/r42",
    standard_output="/fsx/runs/r42/slurm-%j.out",
    standard_error="/fsx/runs/r42/slurm-%j.err",
)

# job_id -> (state, exit_code, signal, reason, start, end, nodes, is_terminal)
EXPECTED = {
    101: ("COMPLETED", 0, None, "", START, END, "node-[1-2]", True),
    102: ("FAILED", 3, None, "NonZeroExitCode", START, END, "node-1", True),
    103: ("CANCELLED", None, 9, "", START, END, "node-1", True),
    104: (
        "TIMEOUT",
        None,
        15,
        "TimeLimit",
        START,
        START + dt.timedelta(seconds=60),
        "node-2",
        True,
    ),
    105: ("RUNNING", None, None, "", START, None, "node-[1-2]", False),
    107: ("PENDING", None, None, "Resources", None, None, "", False),
}


def load(version: str, name: str) -> Any:
    return json.loads((FIXTURES / version / name).read_text())


# -- version detection ---------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_detects_the_newest_version_a_release_serves(version: str) -> None:
    offered = versions_in_openapi(load(version, "openapi.json"))
    assert version in offered
    assert pick_version(offered) == version


def test_newer_server_falls_back_to_the_newest_supported_version() -> None:
    offered = versions_in_openapi(load("v0.0.42", "openapi_25.05.json"))
    assert offered == ["v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43"]
    assert pick_version(offered) == "v0.0.42"


def test_server_with_only_unknown_versions_is_refused() -> None:
    doc = {"paths": {"/slurm/v0.0.36/jobs": {}, "/slurmdb/v0.0.38/jobs": {}}}
    assert versions_in_openapi(doc) == ["v0.0.36"]
    with pytest.raises(SlurmRejected, match=r"offers v0\.0\.36"):
        pick_version(versions_in_openapi(doc))


def test_plugin_style_document_with_servers_is_read() -> None:
    assert versions_in_openapi(
        {"servers": [{"url": "/slurm/v0.0.39/"}], "paths": {"/jobs/": {}}}
    ) == ["v0.0.39"]


def test_every_adapter_is_registered() -> None:
    assert list(SUPPORTED_VERSIONS) == VERSIONS
    assert all(adapter_for(v).version == v for v in VERSIONS)


# -- submit body -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_submit_body_matches_the_schema(version: str) -> None:
    assert adapter_for(version).submit_body(REQUEST) == load(version, "job_submit_request.json")


def test_submit_body_differences_between_versions() -> None:
    bodies = {v: adapter_for(v).submit_body(REQUEST) for v in VERSIONS}
    # Environment: a map in v0.0.38, a K=V list from v0.0.39.
    assert bodies["v0.0.38"]["job"]["environment"]["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS=1" in bodies["v0.0.39"]["job"]["environment"]
    # Numbers: plain in v0.0.38, {set, infinite, number} from v0.0.39.
    assert bodies["v0.0.38"]["job"]["time_limit"] == 60
    assert bodies["v0.0.40"]["job"]["time_limit"] == {"set": True, "infinite": False, "number": 60}
    assert bodies["v0.0.38"]["job"]["nodes"] == [2, 2]
    assert bodies["v0.0.40"]["job"]["nodes"] == "2"
    # The script: top level up to v0.0.40, inside job from v0.0.41 (top level deprecated).
    for v in ("v0.0.38", "v0.0.39", "v0.0.40"):
        assert "script" in bodies[v] and "script" not in bodies[v]["job"]
    for v in ("v0.0.41", "v0.0.42"):
        assert "script" not in bodies[v] and bodies[v]["job"]["script"] == REQUEST.script


@pytest.mark.parametrize("version", VERSIONS)
def test_requeue_is_sent_only_when_asked(version: str) -> None:
    adapter = adapter_for(version)
    assert "requeue" not in adapter.submit_body(REQUEST)["job"]
    off = adapter.submit_body(JobRequest(script="#!/bin/sh\ntrue\n", requeue=False))["job"]
    on = adapter.submit_body(JobRequest(script="#!/bin/sh\ntrue\n", requeue=True))["job"]
    if version == "v0.0.38":
        # Parsed like sbatch flags there: `requeue: false` would still turn it on
        # (tests/slurm/test_client_live.py shows Slurm 22.05 doing so).
        assert (off, on) == ({**off, "no_requeue": True}, {**on, "requeue": True})
        assert "requeue" not in off and "no_requeue" not in on
    else:
        assert (off["requeue"], on["requeue"]) == (False, True)


def test_environment_always_carries_path() -> None:
    body = adapter_for("v0.0.38").submit_body(JobRequest(script="#!/bin/sh\ntrue\n"))
    assert "PATH" in body["job"]["environment"]


@pytest.mark.parametrize("version", VERSIONS)
def test_submit_response_gives_the_job_id(version: str) -> None:
    assert adapter_for(version).parse_submit(load(version, "job_submit_response.json")) == 1234


# -- job parsing ---------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_fixture_shapes_follow_the_schema(version: str) -> None:
    job = load(version, "jobs_response.json")["jobs"][1]
    new = version not in ("v0.0.38", "v0.0.39")
    assert isinstance(job["job_state"], list if new else str)
    assert isinstance(job["start_time"], dict if new else int)
    if version == "v0.0.38":
        assert job["exit_code"] == 768  # waitpid() status of `exit 3`
    elif version == "v0.0.39":
        assert job["exit_code"] == {"set": True, "infinite": False, "number": 768}
    else:
        assert job["exit_code"]["return_code"] == {"set": True, "infinite": False, "number": 3}
        assert job["exit_code"]["status"] == ["ERROR"]


@pytest.mark.parametrize("version", VERSIONS)
def test_jobs_normalise_the_same_in_every_version(version: str) -> None:
    jobs = {
        j.job_id: j for j in adapter_for(version).parse_jobs(load(version, "jobs_response.json"))
    }
    assert sorted(jobs) == [101, 102, 103, 104, 105, 106, 107]
    for job_id, (state, code, sig, reason, start, end, nodes, terminal) in EXPECTED.items():
        j = jobs[job_id]
        got = (
            j.state,
            j.exit_code,
            j.signal,
            j.state_reason,
            j.start_time,
            j.end_time,
            j.nodes,
            j.is_terminal,
        )
        assert got == (state, code, sig, reason, start, end, nodes, terminal), (version, job_id)
    assert jobs[101].name == "vp-ok" and jobs[101].comment == "uid-ok" and jobs[101].succeeded
    assert jobs[102].partition == "compute"
    completing = jobs[106]
    assert "COMPLETING" in completing.flags and not completing.is_terminal
    if version in ("v0.0.38", "v0.0.39"):
        assert completing.state == "COMPLETING"
    else:
        assert (completing.state, completing.exit_code) == ("COMPLETED", 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_ping(version: str) -> None:
    (ping,) = adapter_for(version).parse_ping(load(version, "ping_response.json"))
    assert (ping.hostname, ping.responding, ping.mode) == ("head", True, "primary")


def test_wait_status_decoding() -> None:
    assert decode_wait_status(0) == (0, None)
    assert decode_wait_status(3 << 8) == (3, None)
    assert decode_wait_status(9) == (None, 9)
    assert decode_wait_status(None) == (None, None)


# -- the client over a mock transport --------------------------------------------------------
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, version: str | None = None, token: Callable[[], str] = lambda: TOKEN,
           retries: int = 2) -> tuple[SlurmRestClient, list[float]]:  # fmt: skip
    sleeps: list[float] = []
    c = SlurmRestClient(
        "http://slurm.test",
        "root",
        token,
        version=version,
        retries=retries,
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )
    return c, sleeps


def answer(version: str, fixture: str) -> Handler:
    spec = load(version, fixture)
    status, body = (spec["status"], spec["body"]) if "body" in spec else (200, spec)
    return lambda request: httpx.Response(status, json=body)


@pytest.mark.parametrize("version", VERSIONS)
def test_client_detects_version_and_submits(version: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/openapi/v3":
            return httpx.Response(200, json=load(version, "openapi.json"))
        assert request.url.path == f"/slurm/{version}/job/submit"
        return httpx.Response(200, json=load(version, "job_submit_response.json"))

    c, _ = client(handler)
    assert c.submit(REQUEST) == 1234
    assert c.version == version
    post = seen[-1]
    assert post.headers["X-SLURM-USER-NAME"] == "root"
    assert post.headers["X-SLURM-USER-TOKEN"] == TOKEN
    assert json.loads(post.content) == load(version, "job_submit_request.json")


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_job_is_none_and_cancel_of_it_not_found(version: str) -> None:
    c, _ = client(answer(version, "job_not_found.json"), version)
    assert c.get_job(999999) is None
    c, _ = client(answer(version, "cancel_not_found.json"), version)
    with pytest.raises(SlurmNotFound, match="Invalid job id"):
        c.cancel(999999)
    c, _ = client(answer(version, "cancel_response.json"), version)
    c.cancel(101)


@pytest.mark.parametrize("version", VERSIONS)
def test_rejected_submission_carries_slurms_message(version: str) -> None:
    c, sleeps = client(answer(version, "job_submit_rejected.json"), version)
    with pytest.raises(SlurmRejected) as info:
        c.submit(REQUEST)
    assert info.value.messages == ("Invalid partition name specified",)
    assert info.value.error_numbers == (2000,)
    assert sleeps == []


def test_script_without_shebang_is_refused_before_sending() -> None:
    c, _ = client(lambda r: pytest.fail("nothing may be sent"), "v0.0.38")
    with pytest.raises(SlurmRejected, match="does not look like a batch script"):
        c.submit(JobRequest(script="echo hi\n"))


def test_missing_token_header_is_an_auth_error() -> None:
    c, sleeps = client(lambda r: httpx.Response(401, text="Authentication failure"), "v0.0.38")
    with pytest.raises(SlurmAuthError):
        c.list_jobs()
    assert sleeps == []


def test_a_401_rereads_the_token_once() -> None:
    tokens = iter([TOKEN, TOKEN.replace("c2ln", "bmV3")])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["X-SLURM-USER-TOKEN"] == TOKEN:
            return httpx.Response(401, text="Authentication failure")
        return httpx.Response(200, json=load("v0.0.40", "jobs_response.json"))

    c, _ = client(handler, "v0.0.40", token=lambda: next(tokens))
    assert len(c.list_jobs()) == 7


@pytest.mark.parametrize("token", ["garbage", "", EXPIRED])
def test_unusable_tokens_fail_without_a_request(token: str) -> None:
    c, _ = client(lambda r: pytest.fail("nothing may be sent"), "v0.0.38", token=lambda: token)
    with pytest.raises(SlurmAuthError):
        c.ping()


def test_slurm_auth_error_numbers_mean_auth_error() -> None:
    body = {"errors": [{"error_number": 1007, "error": "Protocol authentication error"}]}
    c, sleeps = client(lambda r: httpx.Response(511, json=body), "v0.0.42")
    with pytest.raises(SlurmAuthError, match="Protocol authentication error"):
        c.list_jobs()
    assert sleeps == []


def test_ambiguous_2205_error_is_unavailable_after_bounded_retries() -> None:
    body = load("v0.0.38", "job_not_found.json")["body"]
    body["errors"][0].update(error_number=-1, error="Unspecified error")
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500, json=body)

    c, sleeps = client(handler, "v0.0.38", retries=3)
    with pytest.raises(SlurmUnavailable, match="refused the token"):
        c.get_job(1)
    assert len(calls) == 4 and len(sleeps) == 3
    assert all(0.5 * 0.5 <= s <= 8.0 for s in sleeps) and sleeps[2] >= sleeps[0]


def test_gateway_errors_and_refused_connections_are_retried() -> None:
    answers = iter([httpx.Response(502), httpx.ConnectError("refused")])

    def handler(request: httpx.Request) -> httpx.Response:
        nxt = next(answers, None)
        if isinstance(nxt, Exception):
            raise nxt
        return nxt or httpx.Response(200, json=load("v0.0.41", "ping_response.json"))

    c, sleeps = client(handler, "v0.0.41")
    assert c.ping()[0].responding
    assert len(sleeps) == 2


def test_submit_is_retried_only_when_nothing_was_sent() -> None:
    calls = []

    def timeout(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("slow")

    c, sleeps = client(timeout, "v0.0.42")
    with pytest.raises(SlurmUnavailable):
        c.submit(REQUEST)
    assert len(calls) == 1 and sleeps == []

    refused = iter([httpx.ConnectError("refused")])

    def connect_then_ok(request: httpx.Request) -> httpx.Response:
        err = next(refused, None)
        if err:
            raise err
        return httpx.Response(200, json=load("v0.0.42", "job_submit_response.json"))

    c, sleeps = client(connect_then_ok, "v0.0.42")
    assert c.submit(REQUEST) == 1234 and len(sleeps) == 1


def test_plain_404_is_not_mistaken_for_a_purged_job() -> None:
    c, _ = client(lambda r: httpx.Response(404, text="Unable find requested URL"), "v0.0.42")
    with pytest.raises(SlurmRejected, match="does not serve"):
        c.get_job(5)


def test_file_token_rereads_a_rotated_secret(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("SLURM_JWT=" + TOKEN + "\n")
    provider = file_token(secret)
    assert provider() == TOKEN
    secret.write_text(EXPIRED)
    assert provider() == EXPIRED
    with pytest.raises(SlurmAuthError, match="expired"):
        check_token(provider())


def test_adapters_table_is_complete() -> None:
    assert set(ADAPTERS) == set(VERSIONS)
