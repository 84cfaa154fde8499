"""Worker process for the multi-process lease test in test_storage.py.

Usage: python storage_worker.py DB_PATH OWNER TTL_SECONDS TOTAL_RUNS

Opens `SqliteStorage` on DB_PATH and, until TOTAL_RUNS runs are completed (or 20 s
pass), claims every claimable run as OWNER. Each successful claim is printed as one
JSON line ``{"event": "claim", "run": ..., "owner": ..., "now": ..., "expires": ...}``.

A run's first claimer "crashes" on every fifth run (by the number in its id): it
marks the run running, bumps crash_count and walks away without releasing the lease,
so another worker must wait for the lease to expire and re-claim it. Any other claim
completes the run at once, fenced by ``expect_owner``; a `ConflictError` there is
printed as ``{"event": "conflict", ...}``.
"""

from __future__ import annotations

import json
import sys
import time

from workflow.storage import (
    AppendEvents,
    ConflictError,
    RunStatus,
    SqliteStorage,
    UpdateRun,
)

_DEADLINE_S = 20.0


def _emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def main(path: str, owner: str, ttl: float, total: int) -> None:
    deadline = time.monotonic() + _DEADLINE_S
    with SqliteStorage(path, synchronous="NORMAL", busy_timeout_s=10.0) as storage:
        while time.monotonic() < deadline:
            if len(storage.list_runs(status=RunStatus.COMPLETED, limit=total)) >= total:
                return
            now = time.time()
            candidates = storage.claimable_runs(now, limit=10)
            if not candidates:
                time.sleep(0.01)
                continue
            for candidate in candidates:
                run = storage.try_claim(candidate.run_id, owner, now, ttl)
                if run is None:
                    continue
                _emit(event="claim", run=run.run_id, owner=owner, now=now, expires=now + ttl)
                number = int(run.run_id.split("-")[1])
                try:
                    if number % 5 == 0 and run.crash_count == 0:
                        storage.apply(
                            [
                                UpdateRun(
                                    run.run_id,
                                    {"status": RunStatus.RUNNING, "crash_count": 1},
                                    expect_owner=owner,
                                )
                            ]
                        )
                        continue
                    ops: list[UpdateRun | AppendEvents] = []
                    if run.status is not RunStatus.RUNNING:
                        ops.append(
                            UpdateRun(run.run_id, {"status": RunStatus.RUNNING}, expect_owner=owner)
                        )
                    ops.append(
                        UpdateRun(
                            run.run_id,
                            {
                                "status": RunStatus.COMPLETED,
                                "result_json": json.dumps(owner),
                                "lease_owner": None,
                                "lease_expires_at": None,
                            },
                            expect_owner=owner,
                        )
                    )
                    ops.append(
                        AppendEvents(run.run_id, [(run.next_seq, json.dumps({"by": owner}))])
                    )
                    storage.apply(ops)
                except ConflictError as error:
                    _emit(event="conflict", run=run.run_id, owner=owner, error=str(error))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
