"""The honest stand-in for KubeRay's pods: run a RayJob's own entrypoint with a local Ray.

The real path runs in the `node` tier (tests/node/: kubelet, containerd, KubeRay
making the Ray pods, the end-to-end test). This harness stays for the tiers on
the kwok control plane where a test needs something pods cannot give cheaply:
a broken input file driven through the operator to a Failed pipeline in
seconds (tests/faults/test_etl_faults.py), and the harness's own checks of the
environment a pod declares (tests/k8s/test_operator_harness.py). It does what
the head pod would: for each RayJob in one namespace it takes
the ConfigMaps mounted into the head container, writes their data into a
temporary directory, and runs the RayJob's `spec.entrypoint` as a subprocess
with every mount path rewritten to that directory (and `python` to this
interpreter). By default RAY_ADDRESS is unset, so `vectorpipe etl` starts a
local Ray itself; with `ray_address` the entrypoint attaches to a running
`LocalRayHead` instead, which is what a KubeRay driver does (the cluster is up
before the job is submitted and the driver gets RAY_ADDRESS).

The entrypoint runs with a clean environment, as in a pod: only what is needed
to start Python and reach the Ray head (`BASICS`, taken from this process),
the `credentials` the test hands over (the stand-in for the pod's
IRSA/instance-role identity: AWS keys only, never an endpoint or region), and
exactly the `env` entries the head container declares (`valueFrom` Secret and
ConfigMap keys resolved through the API). No AWS_*/S3 variable of the test's
own environment leaks in, so a RayJob that forgets the S3 endpoint fails here
as it would on a cluster.

It then writes the status KubeRay would write, through the status subresource:
Initializing, Running/RUNNING with a startTime, and at the end
Complete/SUCCEEDED, or Failed/FAILED with reason AppFailed and the tail of the
output in `message` (KubeRay v1.5 persists `Failed` for a failed Ray job once
its backoffLimit is used up; see rayjob_controller.go). The entrypoint is the
real one the operator built, so the real stage-1 code runs.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
TAIL = 2000
# What a container image provides and Python needs to start; taken from this
# process when set. Nothing AWS- or S3-related: those come only from the pod
# template's `env` or, for the identity, from `credentials`.
BASICS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
          "PYTHONPATH")  # fmt: skip
# How a driver authenticates to a Ray head this process started (Ray's token
# auth): passed on with RAY_ADDRESS, as KubeRay hands a real cluster's token to
# its submitter. Nothing else of this process's Ray settings.
RAY_AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
# The only keys `credentials` may carry: who the pod is, never where S3 is.
CREDENTIAL_KEYS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})


def basic_env(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `BASICS` present in `source` (default: this process's environment)."""
    source = os.environ if source is None else source
    return {k: source[k] for k in BASICS if k in source}


def check_credentials(credentials: Mapping[str, str] | None) -> dict[str, str]:
    """`credentials` as a dict, refusing anything but AWS key variables."""
    creds = dict(credentials or {})
    extra = set(creds) - CREDENTIAL_KEYS
    if extra:
        raise ValueError(
            f"credentials may hold only {sorted(CREDENTIAL_KEYS)}, not {sorted(extra)}"
        )
    return creds


def is_s3_setting(name: str) -> bool:
    """Variables that tell boto3/pyarrow where S3 is or who to be: never inherited."""
    return name.startswith("AWS_") or "S3" in name.upper()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalRayHead:
    """A Ray head started the way a RayCluster head pod starts it (`ray start --head --block`).

    It runs in its own process group so `stop()` ends exactly the processes it
    started (never another Ray on the machine). Start-up is retried: Ray gives
    a raylet a fixed 30 s to register, which a loaded two-core machine can miss.
    Its Ray workers inherit its environment, so AWS_*/S3 variables of the test
    are removed from it; `credentials` (AWS keys only) stand in for the pods'
    identity.
    """

    # A loopback test cluster: Ray's token auth would need the token handed to
    # every driver, which KubeRay does for real clusters and we need not.
    env = {"RAY_AUTH_MODE": "disabled"}

    def __init__(
        self,
        num_cpus: int = 2,
        attempts: int = 3,
        timeout: float = 180.0,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.num_cpus, self.attempts, self.timeout = num_cpus, attempts, timeout
        self.credentials = check_credentials(credentials)
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.log = Path(tempfile.mkdtemp(prefix="vpray-log-")) / "ray-head.log"

    def start(self) -> str:
        ray = str(Path(sys.executable).parent / "ray")
        for _ in range(self.attempts):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            temp = tempfile.mkdtemp(prefix="vpray")  # short: Ray's unix sockets live here
            cmd = [
                ray, "start", "--head", "--block", f"--port={port}",
                f"--num-cpus={self.num_cpus}", "--include-dashboard=false",
                "--disable-usage-stats", f"--temp-dir={temp}",
            ]  # fmt: skip
            # Ray workers inherit the head's environment: no S3 setting of the
            # test's may reach them either (tasks get the S3 config as arguments).
            env = {
                k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not is_s3_setting(k)
            }
            env.update(self.credentials)
            env.update(self.env)
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            deadline = time.monotonic() + self.timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                text = self.log.read_text(errors="replace")
                ip = re.search(r"Local node IP: (\S+)", text)
                if "Ray runtime started" in text and ip:
                    # Drivers canonicalise 127.0.0.1 to the node IP, so use that.
                    self.address = f"{ip.group(1)}:{port}"
                    return self.address
                time.sleep(0.5)
            self.stop()
        raise RuntimeError(
            f"Ray head did not start:\n{self.log.read_text(errors='replace')[-3000:]}"
        )

    def stop(self, grace: float = 10.0) -> None:
        """Stop every process of the head's group: SIGTERM, then SIGKILL after `grace`."""
        if self.proc is None:
            return
        group = self.proc.pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
            if self._group_gone(group, wait):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.proc = None

    def _group_gone(self, group: int, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc is not None:
                self.proc.poll()  # reap our direct child so it does not linger
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        return False


class RayJobHarness:
    """Watches RayJobs in `namespace` and runs each one once, in order of appearance."""

    def __init__(
        self,
        kubeconfig: Path | str,
        namespace: str,
        *,
        python: str = sys.executable,
        credentials: Mapping[str, str] | None = None,
        timeout: float = 600.0,
        workdir: Path | None = None,
        ray_address: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.ray_address = ray_address
        self.python = python
        self.basics = basic_env()
        self.credentials = check_credentials(credentials)
        self.timeout = timeout
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="vp-rayjob-"))
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.seen: set[str] = set()
        self.results: dict[str, subprocess.CompletedProcess[str]] = {}
        self.envs: dict[str, dict[str, str]] = {}  # the environment each entrypoint got
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> RayJobHarness:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rayjob-harness", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.api_client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for rayjob in self._watch():
                    if self._stop.is_set():
                        return
                    uid = rayjob["metadata"]["uid"]
                    if uid not in self.seen:
                        self.seen.add(uid)
                        self.run(rayjob)
            except Exception as e:  # keep watching; the test inspects `errors`
                self.errors.append(e)
                time.sleep(0.5)

    def _watch(self) -> Iterator[dict[str, Any]]:
        # A listing first (RayJobs created before the watch), then a short
        # watch so `stop()` is noticed within seconds.
        listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        yield from listing.get("items", [])
        stream = watch.Watch().stream(
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=2,
        )
        for event in stream:
            if event["type"] in ("ADDED", "MODIFIED"):
                yield event["object"]

    # -- one RayJob ------------------------------------------------------------
    def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, name, {"status": status}
        )

    def _mounts(self, rayjob: Mapping[str, Any], into: Path) -> dict[str, str]:
        """mountPath -> local dir holding the ConfigMap's files, for the head container."""
        pod = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        rewrites: dict[str, str] = {}
        for mount in pod["containers"][0].get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            if "configMap" not in volume:
                continue
            cm = self.core.read_namespaced_config_map(volume["configMap"]["name"], self.namespace)
            local = into / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            for key, value in (cm.data or {}).items():
                (local / key).write_text(value)
            rewrites[mount["mountPath"].rstrip("/")] = str(local)
        return rewrites

    def pod_env(self, rayjob: Mapping[str, Any]) -> dict[str, str]:
        """The head container's declared `env`, with Secret/ConfigMap references resolved.

        Anything the harness cannot resolve (fieldRef, resourceFieldRef,
        envFrom) is an error, never silently dropped.
        """
        container = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"][
            "containers"
        ][0]
        if container.get("envFrom"):
            raise NotImplementedError("the RayJob harness does not resolve envFrom")
        env: dict[str, str] = {}
        for entry in container.get("env") or []:
            name, source = entry["name"], entry.get("valueFrom")
            if source is None:
                env[name] = str(entry.get("value", ""))
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = self.core.read_namespaced_secret(ref["name"], self.namespace)
                env[name] = base64.b64decode((secret.data or {})[ref["key"]]).decode()
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                cm = self.core.read_namespaced_config_map(ref["name"], self.namespace)
                env[name] = (cm.data or {})[ref["key"]]
            else:
                raise NotImplementedError(f"the RayJob harness cannot resolve env {name}: {source}")
        return env

    def environment(self, rayjob: Mapping[str, Any]) -> dict[str, str]:
        """The entrypoint's whole environment: basics, identity, the pod's env, Ray's address."""
        env = {**self.basics, **self.credentials, **self.pod_env(rayjob)}
        # The pod's HOME is its /tmp emptyDir (a read-only root); on the host the
        # entrypoint keeps this process's HOME, where Ray's auth token lives, as
        # every other mount path is mapped to a host directory.
        if "HOME" in self.basics:
            env["HOME"] = self.basics["HOME"]
        env.pop("RAY_ADDRESS", None)
        if self.ray_address:
            env.update({k: os.environ[k] for k in RAY_AUTH if k in os.environ})
            env.update(RAY_ADDRESS=self.ray_address, **LocalRayHead.env)
        return env

    def command(self, rayjob: Mapping[str, Any], into: Path) -> list[str]:
        """The entrypoint as argv, with mounted paths and `python` made local."""
        entrypoint = str(rayjob["spec"]["entrypoint"])
        for mount, local in sorted(self._mounts(rayjob, into).items(), key=lambda kv: -len(kv[0])):
            entrypoint = entrypoint.replace(mount, local)
        argv = shlex.split(entrypoint)
        if argv and argv[0] in ("python", "python3"):
            argv[0] = self.python
        return argv

    def run(self, rayjob: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        name = str(rayjob["metadata"]["name"])
        start = _now()
        job_id = f"{name}-{rayjob['metadata']['uid'][:8]}"
        self._patch_status(name, {"jobDeploymentStatus": "Initializing", "startTime": start})
        into = self.workdir / name
        argv = self.command(rayjob, into)
        env = self.envs[name] = self.environment(rayjob)
        self._patch_status(
            name,
            {
                "jobDeploymentStatus": "Running",
                "jobStatus": "RUNNING",
                "jobId": job_id,
                "rayClusterName": f"{name}-local",
                "rayJobInfo": {"startTime": start},
            },
        )
        try:
            res = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                env=env,
                cwd=into,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            res = subprocess.CompletedProcess(argv, -1, str(e.stdout or ""), f"timed out: {e}")
        self.results[name] = res
        (into / "entrypoint.log").write_text(res.stdout + res.stderr)
        end = _now()
        final: dict[str, Any]
        if res.returncode == 0:
            final = {
                "jobDeploymentStatus": "Complete",
                "jobStatus": "SUCCEEDED",
                "message": "Job finished successfully.",
                "succeeded": 1,
            }
        else:
            tail = (res.stdout + res.stderr)[-TAIL:]
            final = {
                "jobDeploymentStatus": "Failed",
                "jobStatus": "FAILED",
                "reason": "AppFailed",
                "message": f"Job entrypoint command failed with exit code {res.returncode}, "
                f"last available logs (truncated to {TAIL} chars):\n{tail}",
                "failed": 1,
            }
        final.update(endTime=end, rayJobInfo={"startTime": start, "endTime": end})
        self._patch_status(name, final)
        return res

    def wait_for(self, name: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """Block until the RayJob `name` has been run; re-raise a harness error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self.results:
                return self.results[name]
            if self.errors:
                raise self.errors[-1]
            time.sleep(0.2)
        raise TimeoutError(f"RayJob {name} was not run within {timeout}s")


@contextlib.contextmanager
def running(kubeconfig: Path | str, namespace: str, **kw: Any) -> Iterator[RayJobHarness]:
    harness = RayJobHarness(kubeconfig, namespace, **kw)
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()
