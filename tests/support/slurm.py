"""Helpers of the tests against a real Slurm (tests/slurm), kept out of its conftest.

`TokenBox` is the token provider a `SlurmRestClient` calls on every request;
a test swaps its token to simulate rotation and counts the reads.
"""

from __future__ import annotations


class TokenBox:
    """The token a client's provider returns; tests swap it to simulate rotation."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.reads = 0

    def __call__(self) -> str:
        self.reads += 1
        return self.token
