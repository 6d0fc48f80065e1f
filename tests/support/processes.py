"""A controller (the operator or the slurm-bridge) running as a subprocess in a test.

Both are Kopf processes with a liveness endpoint and a metrics endpoint; tests
start them, read their metrics, stop or kill them, and show the log's tail when
something failed.
"""

from __future__ import annotations

import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def http_ok(url: str) -> bool:
    """True once `url` answers 200 (a liveness probe)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@dataclass
class ControllerProcess:
    proc: subprocess.Popen[bytes]
    log: Path
    liveness: str
    metrics_url: str

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
            return str(r.read().decode())

    def stop(self) -> None:
        """SIGTERM, so Kopf shuts down cleanly; SIGKILL if it does not within 20 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to write anything more."""
        self.proc.kill()
        self.proc.wait(10)

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
