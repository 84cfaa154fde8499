"""A tracker that appends each event as one JSON line to a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from tracker.backends._sync import SyncTracker
from tracker.events import Event


class JsonlTracker(SyncTracker):
    """Appends `event.to_json(env=..., service_key=...)` and a newline per event.

    The file is opened in append mode and line-buffered, so each event reaches the
    operating system as soon as it is emitted; `close()` flushes and closes it."""

    drop_reason = "write_error"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        env: str | None = None,
        service_key: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._env = env
        self._service_key = service_key
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8", buffering=1)

    def _deliver(self, event: Event) -> None:
        if self._file is None:
            raise ValueError(f"JSONL tracker for {self.path} is closed")
        self._file.write(event.to_json(env=self._env, service_key=self._service_key) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
