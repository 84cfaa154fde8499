"""Collector fixtures: a real HTTP collector on 127.0.0.1, in-thread or as a subprocess.

- ``collector``: a started :class:`tracker.collector.Collector` with a SQLite file under
  ``tmp_path``; stopped after the test.
- ``collector_process``: ``python -m tracker.collector`` in a subprocess, wrapped in a
  :class:`CollectorProcess` with the same query API (over HTTP); terminated after the test.
- ``start_collector_process``: a factory for more subprocesses (own db path, extra CLI args).

Both expose ``url``, ``events_url``, ``events()``, ``stats()``, ``requests()``,
``set_faults()``, ``set_mode()``, ``clear_faults()`` and ``clear()``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tracker.collector import Collector

REPO_ROOT = Path(__file__).resolve().parents[2]


class CollectorProcess:
    """A ``python -m tracker.collector`` subprocess and an HTTP client for its query API."""

    def __init__(self, db: Path, *extra_args: str, start_timeout: float = 10.0) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracker.collector",
                "--port",
                "0",
                "--db",
                str(db),
                *extra_args,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], start_timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            raise RuntimeError(f"collector did not report its url within {start_timeout} s")
        self.url: str = json.loads(line)["url"]
        self.events_url = self.url + "/events"
        self._http = httpx.Client(base_url=self.url, timeout=5.0)

    def _call(self, method: str, path: str, payload: object = None) -> Any:
        response = self._http.request(method, path, json=payload)
        response.raise_for_status()
        return response.json()

    def events(
        self, workflow_id: str | None = None, event_type: str | None = None
    ) -> list[dict[str, Any]]:
        """``GET /events`` with optional filters."""
        params = {k: v for k, v in (("workflow_id", workflow_id), ("type", event_type)) if v}
        response = self._http.get("/events", params=params)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def stats(self) -> dict[str, Any]:
        """``GET /stats``."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def requests(self) -> list[dict[str, Any]]:
        """``GET /requests``."""
        result: list[dict[str, Any]] = self._call("GET", "/requests")
        return result

    def set_faults(self, script: Sequence[Mapping[str, object]]) -> None:
        """``POST /_faults {"script": [...]}``."""
        self._call("POST", "/_faults", {"script": list(script)})

    def set_mode(self, mode: str) -> None:
        """``POST /_faults {"mode": ...}``."""
        self._call("POST", "/_faults", {"mode": mode})

    def clear_faults(self) -> None:
        """``DELETE /_faults``."""
        self._call("DELETE", "/_faults")

    def clear(self) -> None:
        """``DELETE /events``."""
        self._call("DELETE", "/events")

    def terminate(self, timeout: float = 5.0) -> int:
        """Send SIGTERM and return the exit code; kills the process if it does not exit."""
        self._http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """A started in-thread collector storing into ``tmp_path / "events.db"``."""
    with Collector(db=tmp_path / "events.db") as c:
        yield c


@pytest.fixture
def start_collector_process() -> Iterator[Callable[..., CollectorProcess]]:
    """A factory ``start(db_path, *cli_args)`` of collector subprocesses, all terminated after
    the test (e.g. ``start(tmp_path / "a.db", "--validate")``)."""
    started: list[CollectorProcess] = []

    def start(db: Path, *extra_args: str) -> CollectorProcess:
        process = CollectorProcess(db, *extra_args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()


@pytest.fixture
def collector_process(
    start_collector_process: Callable[..., CollectorProcess], tmp_path: Path
) -> CollectorProcess:
    """A collector CLI subprocess storing into ``tmp_path / "process.db"``."""
    return start_collector_process(tmp_path / "process.db")
