"""Recording a step run under its run's lease.

A run belongs to the driver that created it for as long as the driver renews its lease
(``MetadataStore.heartbeat``); the store refuses step-run writes for a run whose lease
ran out (:class:`~mlzen.errors.LeaseLostError`). A driver that was only starved (a step
holding the GIL, a suspended machine) takes its run back at its next heartbeat, so a
refused write whose run may still be taken back is retried until the run's lease has
run out once more: a live driver has beaten by then, a dead one never will.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from mlzen.errors import LeaseLostError

T = TypeVar("T")

#: Seconds between attempts while waiting for the driver to renew the lease.
RETRY_DELAY = 0.05


def under_lease(write: Callable[[], T]) -> T:
    """``write()``, retried while the store refuses it only because the run's lease ran out.

    Raises:
        LeaseLostError: the run ended, or its driver did not renew the lease within
            the run's ``lease_seconds`` of the first refusal.
    """
    deadline: float | None = None
    while True:
        try:
            return write()
        except LeaseLostError as exc:
            if not exc.reclaimable:
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + exc.lease_seconds
            if now >= deadline:
                raise
            time.sleep(RETRY_DELAY)
