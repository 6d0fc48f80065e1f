"""The slurm-bridge, run as `python -m slurm_bridge`, on the real kube-apiserver and a real Slurm.

Every test starts the bridge as a subprocess scoped to its own namespace, puts
a real root JWT from the local slurmctld into a Secret, creates SlurmJobs with
kubectl, and lets them run for real under slurmd (jobs run as root, hence
`--mpirun-allow-run-as-root`). Assertions look at both sides: the SlurmJob's
status, conditions and Events, and Slurm itself through a separate REST client
(the job's state, its comment carrying the SlurmJob UID, the output it wrote).
Faults are real too: the bridge is SIGKILLed right after the job id appears,
or exits by itself between submit and status write (the
SLURM_BRIDGE_TEST_CRASH_AFTER_SUBMIT hook), slurmrestd is stopped mid-run, the
token in the Secret expires and is rotated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slurm_bridge.client import JobInfo, SlurmRestClient
from slurm_bridge.finalize import FINALIZER, SKIP_CANCEL_ANNOTATION
from slurm_bridge.options import CRASH_AFTER_SUBMIT_ENV, CRASH_EXIT_CODE
from slurm_bridge.script import job_key
from tests.support.controlplane import ControlPlane, free_ports
from tests.support.processes import ControllerProcess, http_ok
from tests.services.slurm import LocalSlurm

pytestmark = [pytest.mark.k8s, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
CRDS = sorted((REPO / "charts" / "vectorpipe" / "crds").glob("vectorpipe.io_*.yaml"))
WAIT = 90.0
VENV_BIN = str(Path(sys.executable).parent)


# -- the bridge process ---------------------------------------------------------------------
Bridge = ControllerProcess


class Rig:
    """The namespace, the bridge processes started in it, and kubectl helpers."""

    def __init__(self, k8s: ControlPlane, slurm: LocalSlurm, ns: str, tmp: Path) -> None:
        self.k8s, self.slurm, self.ns, self.tmp = k8s, slurm, ns, tmp
        self.bridges: list[Bridge] = []
        self.token = slurm.token("root", lifespan=3600)

    # bridge ------------------------------------------------------------------------------
    def start_bridge(self, *, wait_live: bool = True, env: dict[str, str] | None = None) -> Bridge:
        live_port, metrics_port = free_ports(2)
        liveness = f"http://127.0.0.1:{live_port}/healthz"
        cmd = [
            sys.executable, "-m", "slurm_bridge", "--namespace", self.ns,
            "--liveness", liveness, "--metrics-port", str(metrics_port), "--metrics-addr", "127.0.0.1",
            "--poll-interval", "1", "--max-backoff", "4", "--delete-backoff", "3",
            "--slurm-timeout", "10", "--slurm-conf", str(self.slurm.conf_path),
            "--mpirun-allow-run-as-root", "--default-workdir", str(self.slurm.jobs_dir),
            "--job-env", f"PATH={VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "--log-format", "plain", "--verbose",
        ]  # fmt: skip
        log = self.tmp / f"bridge-{len(self.bridges)}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, env={**self.k8s.env, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
            )
        bridge = Bridge(proc, log, liveness, f"http://127.0.0.1:{metrics_port}/metrics")
        self.bridges.append(bridge)
        deadline = time.monotonic() + WAIT
        while wait_live and not http_ok(liveness):
            if proc.poll() is not None or time.monotonic() > deadline:
                bridge.stop()
                raise AssertionError(f"the bridge did not become live:\n{bridge.tail()}")
            time.sleep(0.3)
        return bridge

    # kubectl ----------------------------------------------------------------------------------
    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.k8s.kubectl(*args, "-n", self.ns, **kw)

    def secret(self, name: str, token: str, key: str = "token") -> None:
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {key: token},
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def create(self, name: str, **spec: Any) -> dict[str, Any]:
        spec.setdefault(
            "slurm",
            {
                "endpoint": self.slurm.rest_url,
                "tokenSecretRef": {"name": "slurm-jwt"},
                "user": "root",
            },
        )
        spec.setdefault("output", f"{self.slurm.jobs_dir}/{self.ns}-{name}-%j.out")
        spec.setdefault("timeLimit", "5")
        obj = {
            "apiVersion": "vectorpipe.io/v1alpha1",
            "kind": "SlurmJob",
            "metadata": {"name": name},
            "spec": spec,
        }
        res = self.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj))
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def get(self, name: str) -> dict[str, Any] | None:
        res = self.kubectl("get", "slurmjob", name, "-o", "json", check=False)
        if res.returncode != 0:
            assert "NotFound" in res.stderr, res.stderr
            return None
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def status(self, name: str) -> dict[str, Any]:
        obj = self.get(name)
        assert obj is not None, f"SlurmJob {name} is gone"
        return dict(obj.get("status") or {})

    def wait(
        self, name: str, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.status(name)
            if pred(last):
                return last
            time.sleep(0.3)
        raise AssertionError(f"SlurmJob {name}: no {what} within {timeout}s; status: {last}")

    def wait_phase(self, name: str, phase: str, timeout: float = WAIT) -> dict[str, Any]:
        return self.wait(name, lambda s: s.get("phase") == phase, f"phase {phase}", timeout)

    def wait_gone(self, name: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while self.get(name) is not None:
            assert time.monotonic() < deadline, f"SlurmJob {name} still exists after {timeout}s"
            time.sleep(0.3)

    def events(self, name: str) -> list[tuple[str, str]]:
        res = self.kubectl(
            "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
        )
        items = sorted(
            json.loads(res.stdout)["items"], key=lambda e: e["metadata"]["creationTimestamp"]
        )
        return [(e["reason"], e.get("message", "")) for e in items]

    def wait_event(self, name: str, reason: str, timeout: float = 30.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events(name)
            if reason in [r for r, _ in events] or time.monotonic() > deadline:
                return events
            time.sleep(0.5)

    def output(self, name: str, job_id: int) -> str:
        return (self.slurm.jobs_dir / f"{self.ns}-{name}-{job_id}.out").read_text()


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


def cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})


def slurm_jobs_of(rest: SlurmRestClient, uid: str) -> list[JobInfo]:
    return sorted((j for j in rest.list_jobs() if uid in j.comment), key=lambda j: j.job_id)


def wait_slurm(
    rest: SlurmRestClient, job_id: int, pred: Callable[[JobInfo], bool], timeout: float = WAIT
) -> JobInfo:
    deadline = time.monotonic() + timeout
    info = None
    while time.monotonic() < deadline:
        info = rest.get_job(job_id)
        if info is not None and pred(info):
            return info
        time.sleep(0.3)
    raise AssertionError(f"Slurm job {job_id}: condition not met in {timeout}s; last {info}")


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
    # Terminal: no more writes (the resourceVersion stands still across several poll intervals).
    rv = rig.get("hello")["metadata"]["resourceVersion"]  # type: ignore[index]
    time.sleep(3)
    assert rig.get("hello")["metadata"]["resourceVersion"] == rv  # type: ignore[index]


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
    crashing = rig.start_bridge(env={CRASH_AFTER_SUBMIT_ENV: "1"})
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
        writes = int(rig.get("outage")["metadata"]["resourceVersion"])  # type: ignore[index]
        time.sleep(6)  # retries with backoff, but the status is not rewritten on every retry
        assert int(rig.get("outage")["metadata"]["resourceVersion"]) - writes <= 2  # type: ignore[index]
    finally:
        rig.slurm.start_slurmrestd()
    st = rig.wait_phase("outage", "Succeeded", timeout=90)
    assert cond(st, "SlurmReachable")["status"] == "True"
    reasons = [r for r, _ in rig.events("outage")]
    assert "SlurmUnreachable" in reasons and "SlurmReachable" in reasons
