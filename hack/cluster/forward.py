#!/usr/bin/env python3
"""TCP forwarder from this machine's loopback into the one-node cluster's network namespace.

The cluster (API server, kubelet, pods, and in tests the S3 API and slurmrestd)
lives in a network namespace with no route in or out. A user's kubectl, and the
tests, reach it through this forwarder, the way `kubectl port-forward` reaches a
pod: it listens on 127.0.0.1 in the root namespace and opens each outgoing
connection inside the cluster's namespace. Nothing is routed; the two sides are
two sockets in one process.

    forward.py --netns /run/netns/NAME [--ready-file F] LPORT=HOST:PORT [...]

LPORT 0 picks a free port; the chosen ports are written to --ready-file as
`LPORT=HOST:PORT` lines once every listener is up. Standard library only, so it
runs with the system python3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CLONE_NEWNET = 0x40000000


def enter_netns(path: str) -> None:
    """Move the calling thread into the network namespace at `path`.

    setns(2) acts on the calling thread only, so the dialer thread below lives in
    the cluster's namespace while the event loop (and its listeners) stay in the
    root one. A socket keeps the namespace it was created in.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


class Forwarder:
    def __init__(self, netns: str) -> None:
        # One thread, created in the root namespace and moved into the cluster's,
        # makes every outgoing socket.
        self.dialer = ThreadPoolExecutor(max_workers=1, initializer=enter_netns, initargs=(netns,))
        # Fail now (bad path, no privilege), not on the first connection.
        self.dialer.submit(lambda: None).result()

    def _socket(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        return s

    async def handle(
        self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(self.dialer, self._socket)
        try:
            await loop.sock_connect(sock, (host, port))
        except OSError as e:
            print(f"forward: {host}:{port}: {e}", file=sys.stderr, flush=True)
            sock.close()
            writer.close()
            return
        r2, w2 = await asyncio.open_connection(sock=sock)
        await asyncio.gather(pipe(reader, w2), pipe(r2, writer))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--netns", required=True, help="path of the network namespace, /run/netns/NAME")
    ap.add_argument("--ready-file", type=Path, help="written once all listeners are up")
    ap.add_argument("routes", nargs="+", metavar="LPORT=HOST:PORT")
    args = ap.parse_args()
    fwd = Forwarder(args.netns)
    lines = []
    servers = []
    for route in args.routes:
        lport, _, target = route.partition("=")
        host, _, port = target.rpartition(":")

        async def on_conn(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, h: str = host, p: int = int(port)
        ) -> None:
            await fwd.handle(h, p, r, w)

        server = await asyncio.start_server(on_conn, "127.0.0.1", int(lport))
        servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        lines.append(f"{bound}={host}:{port}")
    if args.ready_file:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(args.ready_file)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
