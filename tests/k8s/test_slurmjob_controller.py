"""The slurm-bridge, run as `python -m slurm_bridge`, on the real kube-apiserver and a real Slurm.

Every test starts the bridge as a subprocess scoped to its own namespace, puts
a real root JWT from the local slurmctld into a Secret, creates SlurmJobs with
kubectl, and lets them run for real under slurmd (jobs run as root, hence
`--mpirun-allow-run-as-root`). Assertions look at both sides: the SlurmJob's
status, conditions and Events, and Slurm itself through a separate REST client
(the job's state, its comment carrying the SlurmJob UID, the output it wrote).
Faults are real too: the bridge is SIGKILLed right after the job id appears,
or exits by itself between submit and status write (the
tests.support.crashing entry point), slurmrestd is stopped mid-run, the
token in the Secret expires and is rotated.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_bridge.client import SlurmRestClient
from slurm_bridge.finalize import FINALIZER, SKIP_CANCEL_ANNOTATION
from slurm_bridge.script import job_key
from tests.services.slurm import LocalSlurm
from tests.support.bridge import Rig, cond, slurm_jobs_of, wait_slurm
from tests.support.controlplane import ControlPlane
from tests.support.crashing import CRASH_EXIT_CODE

pytestmark = [pytest.mark.k8s, pytest.mark.slurm]


@pytest.fixture
def rig(crds: ControlPlane, slurm: LocalSlurm, namespace: str, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(crds, slurm, namespace, tmp_path)
    r.secret("slurm-jwt", r.token)
    yield r
    for b in r.bridges:
        b.stop()
    # Shown by pytest only when the test failed.
    for i, b in enumerate(r.bridges):
        print(f"----- bridge {i} log (tail) -----\n{b.tail(150)}")
    if slurm.dir.name:
        print(slurm.log_tails(20))


# -- the happy paths -----------------------------------------------------------------------------
def test_script_job_runs_under_slurm_and_succeeds(rig: Rig, rest: SlurmRestClient) -> None:
    bridge = rig.start_bridge()
    sj = rig.create("hello", script='#!/bin/bash\nsleep 3\necho "hello from $SLURM_JOB_ID"\n')
    uid = sj["metadata"]["uid"]
    st = rig.wait_phase("hello", "Succeeded")
    assert (st["state"], st["exitCode"], st["nodes"]) == ("COMPLETED", 0, rig.slurm.node_name)
    assert st["startTime"] and st["endTime"] and st["observedGeneration"] == 1
    assert st["submitAttempts"] == 1
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Submitted": "True", "Running": "False", "Complete": "True", "Failed": "False",
        "SlurmReachable": "True",
    }  # fmt: skip
    (job,) = slurm_jobs_of(rest, uid)
    assert job.job_id == st["jobId"] and job.comment == job_key(uid, 1) and uid in job.name
    assert rig.output("hello", job.job_id).strip() == f"hello from {job.job_id}"
    reasons = [r for r, _ in rig.wait_event("hello", "Succeeded")]
    assert reasons[:1] == ["Submitted"] and "Running" in reasons and reasons[-1] == "Succeeded"
    # The printer columns tell the story.
    table = rig.kubectl("get", "slurmjob", "hello").stdout
    assert "Succeeded" in table and "COMPLETED" in table and str(job.job_id) in table
    text = bridge.metrics()
    assert 'slurm_bridge_submits_total{result="submitted"} 1.0' in text
    assert 'slurm_bridge_slurmjobs{phase="Succeeded"} 1.0' in text
    assert 'slurm_bridge_polls_total{result="ok"}' in text
    assert rig.token not in bridge.log.read_text()  # not even at --verbose
    # Terminal: no more writes, as a watch sees across several poll intervals.
    assert rig.writes_during("hello", 3) == []


@pytest.mark.mpi
def test_mpirun_command_job_runs_two_ranks(rig: Rig, rest: SlurmRestClient) -> None:
    rig.start_bridge()
    program = (
        "from mpi4py import MPI; c = MPI.COMM_WORLD; "
        "print('rank', c.Get_rank(), 'of', c.Get_size(), 'sum', c.allreduce(c.Get_rank() + 1))"
    )
    rig.create("mpi", command=[sys.executable, "-c", program], launcher="mpirun", ntasksPerNode=2)
    st = rig.wait_phase("mpi", "Succeeded", timeout=150)
    assert (st["exitCode"], st["nodes"]) == (0, rig.slurm.node_name)
    text = rig.output("mpi", st["jobId"])
    ranks = sorted(line for line in text.splitlines() if line.startswith("rank"))
    assert ranks == ["rank 0 of 2 sum 3", "rank 1 of 2 sum 3"], text


@pytest.mark.mpi
def test_srun_command_job_starts_its_ranks_through_pmix(rig: Rig, rest: SlurmRestClient) -> None:
    rig.start_bridge()
    program = "from mpi4py import MPI; c = MPI.COMM_WORLD; print('rank', c.Get_rank(), 'of', c.Get_size())"
    rig.create("srun", command=[sys.executable, "-c", program], launcher="srun", ntasksPerNode=2)
    st = rig.wait_phase("srun", "Succeeded", timeout=150)
    text = rig.output("srun", st["jobId"])
    assert sorted(line for line in text.splitlines() if line.startswith("rank")) == [
        "rank 0 of 2",
        "rank 1 of 2",
    ], text


@pytest.mark.faults
def test_failing_job_is_failed_with_reason_and_exit_code(rig: Rig, rest: SlurmRestClient) -> None:
    rig.start_bridge()
    rig.create("fails", script="#!/bin/bash\necho about to fail\nexit 3\n")
    st = rig.wait_phase("fails", "Failed")
    assert (st["state"], st["exitCode"], st["reason"]) == ("FAILED", 3, "NonZeroExitCode")
    failed = cond(st, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "NonZeroExitCode")
    assert "exit code 3" in st["message"]
    assert cond(st, "Complete")["status"] == "False"
    assert "Failed" in [r for r, _ in rig.wait_event("fails", "Failed")]


@pytest.mark.faults
def test_hostile_spec_strings_reach_the_job_verbatim(rig: Rig, rest: SlurmRestClient) -> None:
    pwned = rig.slurm.jobs_dir / f"pwned-{rig.ns}"
    words = [
        f"$(touch {pwned})", f"`touch {pwned}`", f"; touch {pwned}; rm -rf {pwned}.d",
        f"a\ntouch {pwned}\n", f"' ; touch {pwned} ; '", "${HOME} *",
    ]  # fmt: skip
    env = {"EVIL": f"$(touch {pwned})`touch {pwned}`", "MULTI": f"x\ntouch {pwned}; echo"}
    rig.start_bridge()
    rig.create(
        "hostile",
        launcher="none",
        launcherArgs=["printf", "<%s>\\n", *words[:3]],
        command=words[3:],
        environment=env,
    )
    st = rig.wait_phase("hostile", "Succeeded")
    assert rig.output("hostile", st["jobId"]) == "".join(f"<{w}>\n" for w in words)
    rig.create(
        "hostile-env",
        script='#!/bin/bash\nprintf "<%s>\\n" "$EVIL" "$MULTI"\n',
        environment=env,
    )
    st = rig.wait_phase("hostile-env", "Succeeded")
    assert rig.output("hostile-env", st["jobId"]) == f"<{env['EVIL']}>\n<{env['MULTI']}>\n"
    assert not pwned.exists()


def test_sbatch_backend_when_no_endpoint_is_set(rig: Rig, rest: SlurmRestClient) -> None:
    rig.start_bridge()
    sj = rig.create("cli", script="#!/bin/bash\necho via sbatch\n", slurm={"user": "root"})
    st = rig.wait_phase("cli", "Succeeded")
    assert st["exitCode"] == 0
    (job,) = slurm_jobs_of(rest, sj["metadata"]["uid"])
    assert job.job_id == st["jobId"]
    assert rig.output("cli", job.job_id).strip() == "via sbatch"


@pytest.mark.faults
def test_backoff_limit_resubmits_a_failed_job_as_a_new_attempt(
    rig: Rig, rest: SlurmRestClient
) -> None:
    marker = rig.slurm.jobs_dir / f"first-try-{rig.ns}"
    script = (
        f"#!/bin/bash\nif [ -e {marker} ]; then echo second; exit 0; fi\ntouch {marker}\nexit 7\n"
    )
    rig.start_bridge()
    sj = rig.create("retry", script=script, backoffLimit=2)
    uid = sj["metadata"]["uid"]
    st = rig.wait_phase("retry", "Succeeded")
    assert st["submitAttempts"] == 2
    first, second = slurm_jobs_of(rest, uid)
    assert (first.comment, second.comment) == (job_key(uid, 1), job_key(uid, 2))
    assert (first.state, first.exit_code, second.state) == ("FAILED", 7, "COMPLETED")
    assert st["jobId"] == second.job_id
    assert "Resubmitting" in [r for r, _ in rig.events("retry")]


@pytest.mark.faults
def test_the_bridge_watches_only_its_namespaces(rig: Rig, rest: SlurmRestClient) -> None:
    other = Rig(rig.k8s, rig.slurm, rig.k8s.create_namespace("bridge-other"), rig.tmp)
    try:
        other.secret("slurm-jwt", other.token)
        outside = other.create("outside", script="#!/bin/bash\ntrue\n")
        rig.start_bridge()
        rig.create("inside", script="#!/bin/bash\ntrue\n")
        rig.wait_phase("inside", "Succeeded")
        time.sleep(2)
        seen = other.get("outside")
        assert seen is not None and "status" not in seen
        assert not seen["metadata"].get("finalizers")
        assert slurm_jobs_of(rest, outside["metadata"]["uid"]) == []
    finally:
        rig.k8s.delete_namespace(other.ns)


# -- deletion ----------------------------------------------------------------------------------
@pytest.mark.faults
def test_delete_while_running_cancels_the_slurm_job(rig: Rig, rest: SlurmRestClient) -> None:
    rig.start_bridge()
    sj = rig.create("sleeper", script="#!/bin/bash\nsleep 300\n")
    st = rig.wait_phase("sleeper", "Running")
    assert FINALIZER in rig.get("sleeper")["metadata"]["finalizers"]  # type: ignore[index]
    rig.kubectl("delete", "slurmjob", "sleeper", "--wait=false")
    rig.wait_gone("sleeper")
    info = wait_slurm(rest, st["jobId"], lambda j: j.is_terminal)
    assert info.state == "CANCELLED"
    assert len(slurm_jobs_of(rest, sj["metadata"]["uid"])) == 1


@pytest.mark.faults
def test_deleting_the_namespace_cancels_its_running_jobs(
    crds: ControlPlane, slurm: LocalSlurm, rest: SlurmRestClient, tmp_path: Path
) -> None:
    # Its own namespace: the Secret goes with it, before the finalizer runs.
    rig = Rig(crds, slurm, crds.create_namespace("bridge-nsdel"), tmp_path)
    try:
        rig.secret("slurm-jwt", rig.token)
        rig.start_bridge()
        rig.create("doomed", script="#!/bin/bash\nsleep 300\n")
        st = rig.wait_phase("doomed", "Running")
        crds.delete_namespace(rig.ns, wait=True)
        assert wait_slurm(rest, st["jobId"], lambda j: j.is_terminal).state == "CANCELLED"
    finally:
        for b in rig.bridges:
            b.stop()
            print(f"----- bridge log (tail) -----\n{b.tail(100)}")


@pytest.mark.faults
def test_delete_waits_for_slurm_then_cancels_and_the_escape_hatch_lets_go(
    rig: Rig, rest: SlurmRestClient
) -> None:
    rig.start_bridge()
    rig.create("held", script="#!/bin/bash\nsleep 300\n")
    rig.create("orphan", script="#!/bin/bash\nsleep 300\n")
    held = rig.wait_phase("held", "Running")
    orphan = rig.wait_phase("orphan", "Running")
    rig.slurm.stop_slurmrestd()
    try:
        rig.kubectl("delete", "slurmjob", "held", "orphan", "--wait=false")
        time.sleep(8)  # several retries of the deletion handler
        assert rig.get("held") is not None and rig.get("orphan") is not None
        # The escape hatch: give up on cancelling this one.
        rig.kubectl("annotate", "slurmjob", "orphan", f"{SKIP_CANCEL_ANNOTATION}=true")
        rig.wait_gone("orphan", timeout=30)
        assert rig.get("held") is not None
    finally:
        rig.slurm.start_slurmrestd()
    rig.wait_gone("held", timeout=60)
    assert wait_slurm(rest, held["jobId"], lambda j: j.is_terminal).state == "CANCELLED"
    still = rest.get_job(orphan["jobId"])
    assert still is not None and still.state == "RUNNING"
    rest.cancel(orphan["jobId"])


# -- exactly once across restarts ------------------------------------------------------------------
@pytest.mark.faults
def test_bridge_killed_as_soon_as_the_job_id_appears_adopts_on_restart(
    rig: Rig, rest: SlurmRestClient
) -> None:
    bridge = rig.start_bridge()
    sj = rig.create("restart", script="#!/bin/bash\nsleep 4\necho done\n")
    uid = sj["metadata"]["uid"]
    rig.wait("restart", lambda s: s.get("jobId") is not None, "a job id", timeout=60)
    bridge.kill()
    assert len(slurm_jobs_of(rest, uid)) == 1
    rig.start_bridge()
    st = rig.wait_phase("restart", "Succeeded")
    (job,) = slurm_jobs_of(rest, uid)
    assert st["jobId"] == job.job_id and st["submitAttempts"] == 1


@pytest.mark.faults
def test_bridge_dying_between_submit_and_status_write_adopts_on_restart(
    rig: Rig, rest: SlurmRestClient
) -> None:
    crashing = rig.start_bridge(crash_after_submit=True)
    sj = rig.create("crash", script="#!/bin/bash\nsleep 2\necho adopted\n")
    uid = sj["metadata"]["uid"]
    assert crashing.proc.wait(60) == CRASH_EXIT_CODE
    # The submit happened, the job id never reached the status (only the write-ahead did).
    st = rig.status("crash")
    assert st.get("jobId") is None and st["submitAttempts"] == 1, st
    (job,) = slurm_jobs_of(rest, uid)
    rig.start_bridge()
    st = rig.wait_phase("crash", "Succeeded")
    assert st["jobId"] == job.job_id
    assert cond(st, "Submitted")["reason"] == "Adopted"
    assert [j.job_id for j in slurm_jobs_of(rest, uid)] == [job.job_id]
    assert "Adopted" in [r for r, _ in rig.events("crash")]
    assert rig.output("crash", job.job_id).strip() == "adopted"


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.faults
@pytest.mark.slow
def test_rotated_token_is_used_without_restart(rig: Rig, rest: SlurmRestClient) -> None:
    lifespan = 25
    bridge = rig.start_bridge()
    first = rig.slurm.token("root", lifespan=lifespan)
    rig.secret("slurm-jwt", first)
    minted = time.monotonic()
    rig.create("rotate", script=f"#!/bin/bash\nsleep {lifespan + 20}\necho survived\n")
    rig.wait("rotate", lambda s: s.get("jobId") is not None, "a job id", timeout=lifespan - 5)
    second = rig.slurm.token("root", lifespan=3600)
    rig.secret("slurm-jwt", second)
    # Past the first token's expiry (plus the client's leeway) the job must still be followed.
    time.sleep(max(0.0, minted + lifespan + 8 - time.monotonic()))
    assert rig.status("rotate")["phase"] == "Running"
    st = rig.wait_phase("rotate", "Succeeded", timeout=60)
    assert st["exitCode"] == 0
    assert "SlurmUnreachable" not in [r for r, _ in rig.events("rotate")]
    assert bridge.proc.poll() is None
    log = bridge.log.read_text()
    assert first not in log and second not in log  # tokens never reach the logs


@pytest.mark.faults
def test_bad_token_shows_in_conditions_until_the_secret_is_fixed(
    rig: Rig, rest: SlurmRestClient
) -> None:
    rig.secret("slurm-jwt", "not-a-jwt")
    rig.start_bridge()
    sj = rig.create("badtoken", script="#!/bin/bash\necho ok\n")
    st = rig.wait(
        "badtoken", lambda s: cond(s, "SlurmReachable").get("status") == "False", "an auth fault"
    )
    assert cond(st, "SlurmReachable")["reason"] == "SlurmAuthError"
    assert cond(st, "Submitted")["status"] == "False" and st["phase"] == "Pending"
    assert slurm_jobs_of(rest, sj["metadata"]["uid"]) == []
    rig.secret("slurm-jwt", rig.slurm.token("root", lifespan=3600))
    st = rig.wait_phase("badtoken", "Succeeded")
    assert cond(st, "SlurmReachable")["status"] == "True"


@pytest.mark.faults
@pytest.mark.slow
def test_slurmrestd_down_mid_run_shows_and_recovers(rig: Rig, rest: SlurmRestClient) -> None:
    rig.start_bridge()
    rig.create("outage", script="#!/bin/bash\nsleep 20\necho through\n")
    rig.wait_phase("outage", "Running")
    rig.slurm.stop_slurmrestd()
    try:
        st = rig.wait(
            "outage", lambda s: cond(s, "SlurmReachable").get("status") == "False", "the outage"
        )
        assert st["phase"] == "Running"
        assert cond(st, "SlurmReachable")["reason"] == "SlurmUnavailable"
        assert "slurmrestd" in cond(st, "SlurmReachable")["message"]
        # Retries with backoff, but the status is not rewritten on every retry.
        writes = rig.writes_during("outage", 6)
        assert len(writes) <= 2, [w.get("status") for w in writes]
    finally:
        rig.slurm.start_slurmrestd()
    st = rig.wait_phase("outage", "Succeeded", timeout=90)
    assert cond(st, "SlurmReachable")["status"] == "True"
    reasons = [r for r, _ in rig.events("outage")]
    assert "SlurmUnreachable" in reasons and "SlurmReachable" in reasons
