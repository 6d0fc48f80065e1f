"""`AsyncSlurmClient`: any `SlurmClient` for asyncio code such as Kopf handlers.

Each call runs the synchronous client in a worker thread (`asyncio.to_thread`),
so a slow slurmrestd or a retry backoff never blocks the event loop. The typed
errors pass through unchanged.
"""

from __future__ import annotations

import asyncio

from slurm_bridge.client.models import ControllerPing, JobInfo, JobRequest
from slurm_bridge.client.protocol import SlurmClient


class AsyncSlurmClient:
    def __init__(self, client: SlurmClient) -> None:
        self.sync = client

    async def submit(self, request: JobRequest) -> int:
        return await asyncio.to_thread(self.sync.submit, request)

    async def get_job(self, job_id: int) -> JobInfo | None:
        return await asyncio.to_thread(self.sync.get_job, job_id)

    async def list_jobs(self) -> list[JobInfo]:
        return await asyncio.to_thread(self.sync.list_jobs)

    async def find_by_comment(self, text: str) -> list[JobInfo]:
        return await asyncio.to_thread(self.sync.find_by_comment, text)

    async def find_by_name(self, name: str) -> list[JobInfo]:
        return await asyncio.to_thread(self.sync.find_by_name, name)

    async def cancel(self, job_id: int) -> None:
        await asyncio.to_thread(self.sync.cancel, job_id)

    async def ping(self) -> list[ControllerPing]:
        return await asyncio.to_thread(self.sync.ping)
