"""Bounded exponential backoff with jitter, for `SlurmUnavailable` only.

Both backends share one policy: at most `retries` further attempts, waiting
``backoff * 2**n`` seconds capped at `max_backoff`, each wait scaled by a random
factor in [0.5, 1] so many controllers do not hammer a recovering slurmrestd in
step. A non-idempotent call (a submit) is repeated only when the error says the
request never reached Slurm. Every other error is raised at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from slurm_bridge.errors import SlurmUnavailable

T = TypeVar("T")


@dataclass
class RetryPolicy:
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int) -> float:
        cap: float = min(self.max_backoff, self.backoff * 2.0**attempt)
        return cap * random.uniform(0.5, 1.0)

    def call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except SlurmUnavailable as exc:
                if (not idempotent and exc.request_sent) or attempt >= self.retries:
                    raise
                self.sleep(self.delay(attempt))
                attempt += 1
