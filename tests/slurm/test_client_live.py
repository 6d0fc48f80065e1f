"""The Slurm clients against a real Slurm 22.05 + slurmrestd (REST v0.0.38) on loopback.

Each test submits real batch jobs that run under slurmd as root (the token's
user), so MPI jobs pass ``--allow-run-as-root --oversubscribe`` to mpirun. Job
output goes to the cluster's world-writable ``jobs/`` directory. Faults are real
too: slurmrestd is stopped, tokens expire, tokens are signed with the wrong key.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import uuid
from collections.abc import Callable

import pytest

from slurm_bridge.client import (
    AsyncSlurmClient,
    JobInfo,
    JobRequest,
    SlurmCliClient,
    SlurmClient,
    SlurmRestClient,
    static_token,
)
from slurm_bridge.errors import SlurmAuthError, SlurmNotFound, SlurmRejected, SlurmUnavailable
from tests.services.slurm import LocalSlurm
from tests.support.slurm import TokenBox

pytestmark = pytest.mark.slurm


def wait_for(
    client: SlurmClient, job_id: int, done: Callable[[JobInfo], bool], timeout: float = 90.0
) -> JobInfo:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = client.get_job(job_id)
        if last is not None and done(last):
            return last
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not get there in {timeout}s; last seen: {last}")


def finished(client: SlurmClient, job_id: int, timeout: float = 90.0) -> JobInfo:
    return wait_for(client, job_id, lambda j: j.is_terminal, timeout)


def job(slurm: LocalSlurm, script: str, **kw: object) -> JobRequest:
    name = str(kw.pop("name", "vp-test"))
    return JobRequest(
        script=script,
        name=name,
        comment=str(kw.pop("comment", uuid.uuid4())),
        current_working_directory=str(slurm.jobs_dir),
        standard_output=str(slurm.jobs_dir / f"{name}-%j.out"),
        **kw,  # type: ignore[arg-type]
    )


def output(slurm: LocalSlurm, name: str, job_id: int) -> str:
    return (slurm.jobs_dir / f"{name}-{job_id}.out").read_text()


# -- REST -------------------------------------------------------------------------------------
def test_detects_the_newest_served_version(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    # 22.05 serves v0.0.36-v0.0.38; the client speaks v0.0.38 and newer.
    assert "openapi/v0.0.36" in slurm.openapi_plugins
    assert rest.version == "v0.0.38"
    (ping,) = rest.ping()
    assert ping.responding and ping.hostname == slurm.node_name


def test_job_completes_with_exit_code_0(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    req = job(slurm, "#!/bin/bash\necho \"hello $GREETING from $SLURM_JOB_ID\"\n",
              name="ok", ntasks=1, nodes=1, time_limit=5, environment={"GREETING": "vp"})  # fmt: skip
    job_id = rest.submit(req)
    info = finished(rest, job_id)
    assert (info.state, info.exit_code, info.signal) == ("COMPLETED", 0, None)
    assert info.succeeded and info.name == "ok" and info.comment == req.comment
    assert info.nodes == slurm.node_name and info.start_time and info.end_time
    assert output(slurm, "ok", job_id).strip() == f"hello vp from {job_id}"


def test_failing_script_reports_its_exit_code(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    job_id = rest.submit(job(slurm, "#!/bin/bash\nexit 3\n", name="exit3"))
    info = finished(rest, job_id)
    assert (info.state, info.exit_code, info.state_reason) == ("FAILED", 3, "NonZeroExitCode")


@pytest.mark.mpi
def test_mpi_job_runs_under_slurm(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    program = (
        "from mpi4py import MPI; c = MPI.COMM_WORLD; "
        "print('rank', c.Get_rank(), 'of', c.Get_size(), 'sum', c.allreduce(c.Get_rank() + 1))"
    )
    script = (
        "#!/bin/bash\nset -e\n"
        f'mpirun --allow-run-as-root --oversubscribe -n 2 {sys.executable} -c "{program}"\n'
    )
    job_id = rest.submit(job(slurm, script, name="mpi", ntasks=2, nodes=1))
    info = finished(rest, job_id, timeout=120)
    text = output(slurm, "mpi", job_id)
    assert (info.state, info.exit_code) == ("COMPLETED", 0), text
    assert sorted(line for line in text.splitlines() if line.startswith("rank")) == [
        "rank 0 of 2 sum 3",
        "rank 1 of 2 sum 3",
    ]


def test_query_by_comment_name_and_unknown_id(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    marker = f"uid-{uuid.uuid4()}"
    job_id = rest.submit(job(slurm, "#!/bin/bash\ntrue\n", name=marker, comment=marker))
    assert [j.job_id for j in rest.find_by_comment(marker)] == [job_id]
    assert [j.job_id for j in rest.find_by_name(marker)] == [job_id]
    assert job_id in {j.job_id for j in rest.list_jobs()}
    finished(rest, job_id)
    assert rest.get_job(99_999_999) is None


def test_cancel_a_sleeping_job(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    job_id = rest.submit(job(slurm, "#!/bin/bash\nsleep 300\n", name="sleeper"))
    wait_for(rest, job_id, lambda j: j.state == "RUNNING")
    rest.cancel(job_id)
    info = finished(rest, job_id)
    assert info.state == "CANCELLED" and not info.succeeded
    rest.cancel(job_id)  # already ended: still fine
    with pytest.raises(SlurmNotFound):
        rest.cancel(99_999_999)


def test_bad_tokens_are_auth_errors(slurm: LocalSlurm, expired_token: Callable[[], str]) -> None:
    for bad in ("not-a-jwt", expired_token()):
        with SlurmRestClient(slurm.rest_url, "root", static_token(bad), version="v0.0.38") as c:
            with pytest.raises(SlurmAuthError):
                c.list_jobs()


def test_token_signed_with_another_key_is_refused(slurm: LocalSlurm) -> None:
    header, payload, _ = slurm.token("root").split(".")
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(b'x' * 32).decode().rstrip('=')}"
    sleeps: list[float] = []
    with SlurmRestClient(slurm.rest_url, "root", lambda: forged, version="v0.0.38",
                         retries=2, sleep=sleeps.append) as c:  # fmt: skip
        # slurmrestd 22.05 answers a refused token exactly like an unreachable
        # slurmctld (HTTP 500, "Unspecified error"), so the client can only say so.
        with pytest.raises(SlurmUnavailable, match="refused the token"):
            c.list_jobs()
        assert len(sleeps) == 2
        # A submit is never repeated once sent; 22.05 answers it with "Zero Bytes".
        marker = f"uid-{uuid.uuid4()}"
        with pytest.raises(SlurmUnavailable, match="refused token") as info:
            c.submit(job(slurm, "#!/bin/bash\ntrue\n", comment=marker))
        assert info.value.request_sent and len(sleeps) == 2
    with SlurmRestClient(slurm.rest_url, "root", static_token(slurm.token())) as good:
        assert good.find_by_comment(marker) == []


def test_rejections_carry_slurms_message(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    with pytest.raises(SlurmRejected, match="does not look like a batch script"):
        rest.submit(job(slurm, "echo no shebang\n"))
    with pytest.raises(SlurmRejected) as info:
        rest.submit(job(slurm, "#!/bin/bash\ntrue\n", partition="no-such-partition"))
    assert info.value.messages == ("Invalid partition name specified",)
    assert info.value.error_numbers == (2000,)


def test_slurmrestd_down_is_unavailable_after_bounded_retries(
    slurm: LocalSlurm, token_box: TokenBox
) -> None:
    sleeps: list[float] = []
    client = SlurmRestClient(slurm.rest_url, "root", token_box, version="v0.0.38",
                             retries=3, backoff=0.1, max_backoff=0.4, sleep=sleeps.append)  # fmt: skip
    slurm.stop_slurmrestd()
    try:
        started = time.monotonic()
        with pytest.raises(SlurmUnavailable, match="cannot connect"):
            client.ping()
        assert len(sleeps) == 3 and time.monotonic() - started < 10
        sleeps.clear()
        with pytest.raises(SlurmUnavailable) as info:
            client.submit(job(slurm, "#!/bin/bash\ntrue\n"))
        # Connection refused: nothing reached Slurm, so even a submit was retried.
        assert not info.value.request_sent and len(sleeps) == 3
    finally:
        slurm.start_slurmrestd()
    assert client.ping()[0].responding
    client.close()


def test_rotated_token_is_picked_up(
    rest: SlurmRestClient, slurm: LocalSlurm, token_box: TokenBox
) -> None:
    first = rest.submit(job(slurm, "#!/bin/bash\ntrue\n"))
    token_box.token = slurm.token("root", lifespan=600)
    second = rest.submit(job(slurm, "#!/bin/bash\ntrue\n"))
    assert second > first and token_box.reads >= 2


def test_expired_token_is_reread_once(slurm: LocalSlurm, expired_token: Callable[[], str]) -> None:
    # The Secret still held an expired token at the first read and a fresh one at the
    # second: the client's one re-read rescues the call.
    reads = [expired_token(), slurm.token("root", lifespan=600)]
    with SlurmRestClient(slurm.rest_url, "root", lambda: reads.pop(0) if len(reads) > 1 else reads[0],
                         version="v0.0.38") as c:  # fmt: skip
        assert c.ping()[0].responding


def test_client_survives_a_slurmrestd_restart(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    assert rest.ping()[0].responding
    slurm.restart_slurmrestd()
    assert rest.ping()[0].responding  # the pooled connection died; a retry reconnects


def test_async_wrapper(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    aclient = AsyncSlurmClient(rest)

    async def scenario() -> JobInfo | None:
        job_id = await aclient.submit(job(slurm, "#!/bin/bash\ntrue\n"))
        return await aclient.get_job(job_id)

    info = asyncio.run(scenario())
    assert info is not None and info.name == "vp-test"


@pytest.mark.slow
def test_time_limit_ends_in_timeout(rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    job_id = rest.submit(job(slurm, "#!/bin/bash\nsleep 600\n", partition="short", time_limit=1))
    info = finished(rest, job_id, timeout=180)
    assert info.state == "TIMEOUT" and info.state_reason == "TimeLimit"


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_submit_query_cancel(cli: SlurmCliClient, slurm: LocalSlurm) -> None:
    assert cli.ping()[0].responding
    marker = f"uid-{uuid.uuid4()}"
    ok = cli.submit(job(slurm, "#!/bin/bash\necho \"cli $GREETING\"\n", name="cli-ok",
                        comment=marker, environment={"GREETING": "hi"}))  # fmt: skip
    info = finished(cli, ok)
    assert (info.state, info.exit_code, info.comment) == ("COMPLETED", 0, marker)
    assert output(slurm, "cli-ok", ok).strip() == "cli hi"
    assert [j.job_id for j in cli.find_by_comment(marker)] == [ok]

    failed = finished(cli, cli.submit(job(slurm, "#!/bin/bash\nexit 3\n", name="cli-exit3")))
    assert (failed.state, failed.exit_code) == ("FAILED", 3)

    sleeper = cli.submit(job(slurm, "#!/bin/bash\nsleep 300\n", name="cli-sleep"))
    wait_for(cli, sleeper, lambda j: j.state == "RUNNING")
    cli.cancel(sleeper)
    assert finished(cli, sleeper).state == "CANCELLED"
    cli.cancel(sleeper)

    assert cli.get_job(99_999_999) is None
    with pytest.raises(SlurmNotFound):
        cli.cancel(99_999_999)
    with pytest.raises(SlurmRejected, match="does not look like a batch script"):
        cli.submit(job(slurm, "echo no shebang\n"))
    with pytest.raises(SlurmRejected, match="Invalid partition name specified"):
        cli.submit(job(slurm, "#!/bin/bash\ntrue\n", partition="no-such-partition"))


def test_cli_and_rest_agree(cli: SlurmCliClient, rest: SlurmRestClient, slurm: LocalSlurm) -> None:
    job_id = rest.submit(job(slurm, "#!/bin/bash\nexit 4\n", name="agree"))
    by_rest = finished(rest, job_id)
    by_cli = cli.get_job(job_id)
    assert by_cli is not None
    fields = ("job_id", "name", "comment", "state", "exit_code", "nodes", "start_time", "end_time")
    assert {f: getattr(by_cli, f) for f in fields} == {f: getattr(by_rest, f) for f in fields}


def test_slurmctld_down_is_unavailable_for_both_backends(
    slurm: LocalSlurm, token_box: TokenBox
) -> None:
    # No retries: with slurmctld gone every attempt waits out Slurm's own ~9 s
    # connect retries, in slurmrestd and in squeue alike.
    rest = SlurmRestClient(slurm.rest_url, "root", token_box, version="v0.0.38", retries=0)
    cli = SlurmCliClient(slurm_conf=str(slurm.conf_path), retries=0)
    job_id = rest.submit(job(slurm, "#!/bin/bash\nsleep 5\n", name="survivor"))
    slurm.stop_daemon("slurmctld")
    try:
        with pytest.raises(SlurmUnavailable):
            rest.list_jobs()
        with pytest.raises(SlurmUnavailable, match="Failed while looking for jobs"):
            cli.list_jobs()
        assert not cli.ping()[0].responding
    finally:
        slurm.start_daemon("slurmctld")
    # slurmctld restarts from its saved state: the job is still known and ends.
    assert finished(rest, job_id, timeout=120).is_terminal
    rest.close()


@pytest.mark.parametrize("backend", ["rest", "cli"])
def test_requeue_choice_reaches_slurm(
    backend: str, rest: SlurmRestClient, cli: SlurmCliClient, slurm: LocalSlurm
) -> None:
    """The bridge submits with requeue off; Slurm (JobRequeue=1 by default) must record it."""
    client: SlurmClient = rest if backend == "rest" else cli
    seen = {}
    for requeue in (False, True):
        job_id = client.submit(
            job(slurm, "#!/bin/bash\nsleep 60\n", name=f"requeue-{backend}", requeue=requeue)
        )
        try:
            seen[requeue] = slurm.run("scontrol", "show", "job", str(job_id)).stdout
        finally:
            client.cancel(job_id)
    assert "Requeue=0" in seen[False], seen[False]
    assert "Requeue=1" in seen[True], seen[True]
