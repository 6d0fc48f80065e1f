"""The S3 API and Slurm that the one-node cluster's pods reach, started inside its namespace.

Run as ``nsenter --net=NETNS python -m tests.node.netns_services --host NODE_IP
--ready-file F``: it starts moto's S3 server and a `LocalSlurm` (munged,
slurmctld, slurmd, slurmrestd) with every socket in the cluster's network
namespace, S3 and slurmrestd on the node's address so pods reach them, then
writes F (JSON: endpoints, a root token, the jobs directory, slurm.conf) and
waits for SIGTERM to stop them. The test process, in the root namespace,
reaches them through hack/cluster/forward.py.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from tests.services.slurm import LocalSlurm

S3_PORT = 9000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True, help="the node's address inside the namespace")
    ap.add_argument("--ready-file", type=Path, required=True)
    ap.add_argument("--slurm-base", type=Path, default=Path("/tmp/vectorpipe-slurm-node"))
    args = ap.parse_args()

    from moto.server import ThreadedMotoServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    s3 = ThreadedMotoServer(ip_address=args.host, port=S3_PORT, verbose=False)
    s3.start()
    slurm = LocalSlurm(base=args.slurm_base, rest_host=args.host)
    try:
        slurm.start()
        info = {
            "s3_endpoint": f"http://{args.host}:{S3_PORT}",
            "rest_url": slurm.rest_url,
            "rest_port": slurm.rest_port,
            "token": slurm.token("root", lifespan=6 * 3600),
            "jobs_dir": str(slurm.jobs_dir),
            "slurm_conf": str(slurm.conf_path),
            "slurm_logs": str(slurm.dir / "logs"),
        }
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(args.ready_file)
        print("ready", flush=True)
        stop.wait()
    except BaseException:
        print(slurm.log_tails(), file=sys.stderr, flush=True)
        raise
    finally:
        slurm.stop()
        s3.stop()


if __name__ == "__main__":
    main()
