"""A real, throw-away Slurm cluster on loopback: munged, slurmctld, slurmd and slurmrestd.

`LocalSlurm` starts Debian's Slurm 22.05 daemons as local processes in one run
directory under ``/tmp/vectorpipe-slurm`` (override with ``VECTORPIPE_SLURM_BASE``):
a private munged on its own socket and key, a generated slurm.conf (JWT as the
alternate auth type, no cgroups, one node with this machine's cores, a default
``debug`` partition and a one-minute ``short`` one for time-limit tests), free
loopback ports, and slurmrestd running as the unprivileged system user ``vpslurm``
with ``SLURM_JWT=daemon``. Every daemon logs to a file in ``logs/``; `log_tails()`
is what a failing test prints. Jobs run as the token's user: tests use root
tokens, so MPI jobs need ``mpirun --allow-run-as-root --oversubscribe``. Startup is
idempotent and cleans up after runs whose owning process died (their daemons are
identified by the run directory in their command line or environment, never by
name). The module imports nothing from pytest; `slurm_fixture` is a plain
generator that any conftest can wrap with ``pytest.fixture``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

DEFAULT_BASE = Path(os.environ.get("VECTORPIPE_SLURM_BASE", "/tmp/vectorpipe-slurm"))
REST_USER = "vpslurm"
PACKAGES = "slurm-wlm slurmctld slurmd slurmrestd munge slurm-wlm-jwt-plugin"


class LocalSlurmError(RuntimeError):
    """A daemon failed to start or died, or a Slurm command failed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plugin_dir() -> Path:
    for c in [*glob.glob("/usr/lib/*/slurm-wlm"), "/usr/lib64/slurm", "/usr/lib/slurm"]:
        if (Path(c) / "auth_munge.so").exists():
            return Path(c)
    raise LocalSlurmError(f"no Slurm plugin directory found; install: {PACKAGES}")


def _check_prerequisites() -> Path:
    binaries = ("munged", "slurmctld", "slurmd", "slurmrestd", "sinfo", "scontrol", "sbatch")
    missing = [b for b in binaries if shutil.which(b) is None]
    plugins = _plugin_dir()
    missing += [p for p in ("auth_jwt.so", "rest_auth_jwt.so") if not (plugins / p).exists()]
    if missing:
        raise LocalSlurmError(f"missing {', '.join(missing)}; install Debian packages: {PACKAGES}")
    if os.geteuid() != 0:
        raise LocalSlurmError("LocalSlurm runs slurmd as root (SlurmUser=root); run as root")
    return plugins


def _ensure_user(name: str) -> None:
    """Create the system user slurmrestd drops to; concurrent creators are fine."""
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        return
    argv = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        name,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    # 9 = "already exists": another session created it between our check and here.
    if proc.returncode not in (0, 9):
        raise LocalSlurmError(f"useradd {name} failed: {proc.stderr.strip()}")


def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) follows the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie keeps its /proc entry until reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pids_referencing(marker: str) -> list[int]:
    """Processes whose command line or environment mentions `marker` (a run directory)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                if needle in (entry / part).read_bytes():
                    found.append(int(entry.name))
                    break
            except OSError:
                break
    return found


def _kill_all(pids: Sequence[int], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_running(p) for p in pids):
            time.sleep(0.1)


def reap_stale_runs(base: Path = DEFAULT_BASE) -> list[Path]:
    """Stop the daemons and remove the directories of runs whose owner process is gone."""
    reaped = []
    for run_dir in sorted(base.glob("run-*")):
        owner = run_dir / "owner"
        try:
            pid_s, start = owner.read_text().split()
            alive = _proc_start_time(int(pid_s)) == start
        except (OSError, ValueError):
            # A directory without a readable owner file is a crashed start; an
            # hour's grace keeps us off a run that is being created right now.
            alive = time.time() - run_dir.stat().st_mtime < 3600
        if alive:
            continue
        _kill_all(_pids_referencing(f"{run_dir}/"))
        shutil.rmtree(run_dir, ignore_errors=True)
        reaped.append(run_dir)
    return reaped


class LocalSlurm:
    """One Slurm cluster on loopback; `start()`, use `rest_url` and `token()`, `stop()`."""

    def __init__(
        self,
        base: Path = DEFAULT_BASE,
        rest_user: str = REST_USER,
        openapi_plugins: Sequence[str] | None = None,
        startup_timeout: float = 60.0,
        rest_host: str = "127.0.0.1",
    ) -> None:
        self.base = base
        # The node tier binds slurmrestd to the one-node cluster's node address,
        # inside its network namespace, so that pods reach it.
        self.rest_host = rest_host
        self.rest_user = rest_user
        self.openapi_plugins = list(openapi_plugins or ())
        self.startup_timeout = startup_timeout
        self.node_name = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.dir = Path()
        self.rest_port = 0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def conf_path(self) -> Path:
        return self.dir / "etc" / "slurm.conf"

    @property
    def jobs_dir(self) -> Path:
        """A world-writable directory for jobs' working directories and output files."""
        return self.dir / "jobs"

    @property
    def rest_url(self) -> str:
        return f"http://{self.rest_host}:{self.rest_port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment a Slurm command (sbatch, squeue, ...) needs for this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf_path)}

    def log_path(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> LocalSlurm:
        if self.dir.name and all(self._alive(d) for d in ("slurmctld", "slurmd", "slurmrestd")):
            return self  # already up: starting twice is a no-op
        self.stop()  # half-started earlier: begin again from nothing
        plugins = _check_prerequisites()
        _ensure_user(self.rest_user)
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        reap_stale_runs(self.base)
        self.dir = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=self.base))
        # slurmrestd runs as an unprivileged user and must read slurm.conf.
        self.dir.chmod(0o755)
        (self.dir / "owner").write_text(f"{os.getpid()} {_proc_start_time(os.getpid())}\n")
        for sub, mode in (("etc", 0o755), ("state", 0o700), ("spool", 0o755), ("logs", 0o755),
                          ("run", 0o755), ("munge", 0o755), ("jobs", 0o1777)):  # fmt: skip
            (self.dir / sub).mkdir(mode=mode)
            (self.dir / sub).chmod(mode)
        if not self.openapi_plugins:
            # Every non-slurmdbd API the package ships (22.05: v0.0.36-v0.0.38), so
            # version detection has a real choice to make.
            self.openapi_plugins = sorted(
                "openapi/" + p.name.removeprefix("openapi_").removesuffix(".so").replace("_", ".")
                for p in plugins.glob("openapi_v0_0_*.so")
            )
        try:
            self._start_munged()
            self._write_conf()
            for name in ("slurmctld", "slurmd", "slurmrestd"):
                self.start_daemon(name)
        except BaseException:
            print(self.log_tails(), file=sys.stderr)
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel every job, stop every daemon and remove the run directory."""
        if not self.dir.name:
            return
        self.stop_daemon("slurmrestd")
        if self._alive("slurmctld"):
            with contextlib.suppress(LocalSlurmError, subprocess.TimeoutExpired):
                ids = self.run("squeue", "-h", "-o", "%A", timeout=10).stdout.split()
                if ids:
                    self.run("scancel", *ids, check=False, timeout=10)
        for name in ("slurmd", "slurmctld", "munged"):
            self.stop_daemon(name)
        # Job steps outlive slurmd; they carry SLURM_CONF pointing here.
        _kill_all(_pids_referencing(f"{self.dir}/"))
        if os.environ.get("VECTORPIPE_SLURM_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = Path()

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- single daemons, for fault tests ---------------------------------------------------
    def start_daemon(self, name: str) -> None:
        """Start slurmctld (keeping its saved state), slurmd or slurmrestd and wait for it."""
        if self._alive(name):
            return
        conf = ["-f", str(self.conf_path)]
        if name == "slurmrestd":
            self.rest_port = self.rest_port or free_port()
            argv = ["slurmrestd", *conf, "-a", "rest_auth/jwt", "-s", ",".join(self.openapi_plugins),
                    "-u", self.rest_user, "-g", self.rest_user, f"{self.rest_host}:{self.rest_port}"]  # fmt: skip
            # Without SLURM_JWT=daemon slurmrestd takes each request's token for its
            # own configuration token and rejects it ("Rejecting thread config token").
            self._spawn(name, argv, {"SLURM_JWT": "daemon"})
            self._wait("slurmrestd to serve", self._rest_up, (name,))
        elif name == "slurmctld":
            self._spawn(name, ["slurmctld", "-D", *conf])
            self._wait("slurmctld to answer", self._ctld_up, (name,))
        elif name == "slurmd":
            self._spawn(name, ["slurmd", "-D", *conf])
            self._wait("the node to be idle", self._node_idle, ("slurmctld", name))
        else:
            raise ValueError(f"unknown daemon {name!r}")

    def stop_daemon(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start_slurmrestd(self) -> None:
        self.start_daemon("slurmrestd")

    def stop_slurmrestd(self) -> None:
        self.stop_daemon("slurmrestd")

    def restart_slurmrestd(self) -> None:
        self.stop_daemon("slurmrestd")
        self.start_daemon("slurmrestd")

    # -- client helpers -------------------------------------------------------------------
    def run(
        self, *argv: str, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster."""
        proc = subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise LocalSlurmError(
                f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def token(self, user: str = "root", lifespan: int = 3600) -> str:
        """A fresh JWT for `user` (jobs submitted with it run as that user)."""
        out = self.run("scontrol", "token", f"username={user}", f"lifespan={lifespan}").stdout
        match = re.search(r"SLURM_JWT=(\S+)", out)
        if not match:
            raise LocalSlurmError(f"scontrol token printed no token: {out!r}")
        return match.group(1)

    def log_tails(self, lines: int = 40) -> str:
        if not self.dir.name or not (self.dir / "logs").is_dir():
            return ""
        parts = []
        for log in sorted((self.dir / "logs").glob("*")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {log.name} (last {len(text)} lines) -----\n" + "\n".join(text))
        return "\n".join(parts)

    # -- internals -----------------------------------------------------------------------
    def _start_munged(self) -> None:
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(128))
        key.chmod(0o600)
        # A private munged on its own socket and key: a system munged (running or
        # not, with whatever key) never matters, and concurrent runs stay apart.
        self.munge_socket = self.dir / "munge" / "munge.socket"
        run = self.dir / "run"
        argv = ["munged", "-F", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
                f"--pid-file={run / 'munged.pid'}", f"--log-file={self.log_path('munged')}",
                f"--seed-file={self.dir / 'munge' / 'munged.seed'}"]  # fmt: skip
        self._spawn("munged", argv)
        try:
            self._wait("munged's socket", self.munge_socket.exists, ("munged",))
        except LocalSlurmError:
            # Fall back to the machine's munged when it already runs and answers.
            system = Path("/run/munge/munge.socket.2")
            probe = subprocess.run(
                ["munge", "-n", "-S", str(system)], capture_output=True, check=False
            )
            if probe.returncode != 0:
                raise
            self.stop_daemon("munged")
            self.munge_socket = system

    def _write_conf(self) -> None:
        jwt_key = self.dir / "state" / "jwt.key"
        jwt_key.write_bytes(secrets.token_bytes(32))
        jwt_key.chmod(0o600)
        (self.dir / "etc" / "plugstack.conf").write_text("")
        total_kb = int(Path("/proc/meminfo").read_text().split()[1])  # MemTotal comes first
        d, host = self.dir, self.node_name
        # RealMemory above what slurmd measures would make the node INVALID.
        memory = max(256, int(total_kb / 1024 * 0.9))
        self.conf_path.write_text(f"""\
ClusterName=vplocal
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={jwt_key}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={self.log_path("slurmctld")}
SlurmdLogFile={self.log_path("slurmd")}
PlugStackConfig={d}/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
PartitionName=short Nodes={host} MaxTime=1 State=UP OverSubscribe=YES
""")
        self.conf_path.chmod(0o644)

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        with open(self.dir / "logs" / f"{name}.stderr", "ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**self.env, **(extra_env or {})},
                # Own session: a Ctrl-C aimed at pytest must not kill the daemons
                # halfway through a test's cleanup.
                start_new_session=True,
            )  # fmt: skip
        self._procs[name] = proc

    def _alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def _wait(self, what: str, ready: Callable[[], bool], needed: Sequence[str]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not ready():
            for name in needed:
                if not self._alive(name):
                    proc = self._procs.get(name)
                    code = proc.returncode if proc else None
                    raise LocalSlurmError(f"{name} exited with {code} while waiting for {what}")
            if time.monotonic() > deadline:
                raise LocalSlurmError(
                    f"timed out after {self.startup_timeout:.0f}s waiting for {what}"
                )
            time.sleep(0.2)

    def _ctld_up(self) -> bool:
        return "UP" in self.run("scontrol", "ping", check=False, timeout=10).stdout

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False, timeout=10).stdout
        return any(
            line.split()[1].rstrip("*~#") in ("idle", "mix", "alloc")
            for line in out.splitlines()
            if line.startswith(self.node_name + " ")
        )

    def _rest_up(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.rest_url}/openapi/v3", timeout=2).close()
        except urllib.error.HTTPError:
            return True  # any HTTP answer proves it listens and serves
        except OSError:
            return False
        return True


_shared: LocalSlurm | None = None
_users = 0


def slurm_fixture() -> Iterator[LocalSlurm]:
    """Session-fixture body: a started LocalSlurm, stopped after its last user.

    tests/conftest.py defines the `slurm` fixture with it. A module that wraps it
    again (``pytest.fixture(scope="session")(slurm_fixture)``) gets the same
    cluster, not a second one: one slurmctld per machine is what the ports,
    munge key and the state dir allow.
    """
    global _shared, _users
    if _shared is None:
        cluster = LocalSlurm()
        cluster.start()
        _shared = cluster
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0:
            _shared.stop()
            _shared = None
