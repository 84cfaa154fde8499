"""A real HTTP event collector on 127.0.0.1, for tests, benchmarks and local development.

Stdlib only (``http.server`` + ``sqlite3``). It stores delivered events, deduplicated by
``event_id``, and serves them back in ``event_id`` (emit) order, exactly as received.

Endpoints:

- ``POST /events``: a JSON array of events or ``{"events": [...]}``, optionally gzip
  (``Content-Encoding: gzip``). Replies ``200 {"accepted": n, "duplicates": m}``, where
  ``accepted`` counts newly stored events; malformed bodies get ``400``.
- ``GET /events?workflow_id=...&type=...``: stored events (raw JSON), filters optional.
- ``DELETE /events``: forget all events, counters and the request log.
- ``GET /stats``: counters; ``requests_by_status`` counts ``POST /events`` replies by status,
  plus ``"hang"`` and ``"reset"`` for requests that got no reply.
- ``GET /requests``: one record per ``POST /events`` (arrival time, status or fault, size,
  headers, event ids), to check batching, timing and retries.
- ``GET /health``: ``200 {"ok": true}``.
- ``POST /_faults`` with ``{"script": [...]}`` and/or ``{"mode": "..."}``; ``DELETE /_faults``.
  Script items apply to the next ``POST /events`` requests, one each, in order:
  ``{"status": 500}``, ``{"status": 429, "retry_after": 1.5}``, ``{"delay": 0.3}`` (then
  handle normally), ``{"hang": true}`` (hold the connection until the server stops),
  ``{"reset": true}`` (read the body, then abort the connection with a TCP RST). When the script
  is used up, the mode applies: ``ok``, ``down`` (503), ``hang``, ``reset`` or ``status:NNN``.
  Faulted requests store nothing, except ``delay``.

Examples:
    >>> import json, urllib.request
    >>> with Collector() as c:
    ...     req = urllib.request.Request(c.events_url, data=b'[{"event_id": "e1"}]')
    ...     json.load(urllib.request.urlopen(req))
    {'accepted': 1, 'duplicates': 0}

CLI: ``python -m tracker.collector --port 0 --db events.db`` prints ``{"url": "..."}`` once
listening and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import json
import os
import re
import signal
import socket
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Collector", "main", "split_batch"]

_MODE_RE = re.compile(r"^(ok|down|hang|reset|status:[1-5][0-9][0-9])$")
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


# --- batch parsing ----------------------------------------------------------------------------


def _skip_ws(text: str, i: int) -> int:
    m = _WS.match(text, i)
    return m.end() if m else i


def _raw_array(text: str, i: int) -> tuple[list[tuple[Any, str]], int]:
    i = _skip_ws(text, i + 1)
    items: list[tuple[Any, str]] = []
    if text.startswith("]", i):
        return items, i + 1
    while True:
        value, end = _DECODER.raw_decode(text, i)
        items.append((value, text[i:end]))
        i = _skip_ws(text, end)
        if text.startswith(",", i):
            i = _skip_ws(text, i + 1)
        elif text.startswith("]", i):
            return items, i + 1
        else:
            raise ValueError(f"expected ',' or ']' at offset {i}")


def split_batch(text: str) -> list[tuple[Any, str]]:
    """Parse a batch body into ``(value, raw_json_text)`` pairs, one per event.

    The body is a JSON array or an object with an ``"events"`` array. Keeping each element's
    exact source text lets the collector serve events back byte for byte. Raises ``ValueError``.

    >>> split_batch('{"events": [1, {"a": 2}]}')
    [(1, '1'), ({'a': 2}, '{"a": 2}')]
    """
    i = _skip_ws(text, 0)
    items: list[tuple[Any, str]] | None = None
    if text.startswith("[", i):
        items, i = _raw_array(text, i)
    elif text.startswith("{", i):
        i = _skip_ws(text, i + 1)
        while not text.startswith("}", i):
            key, i = _DECODER.raw_decode(text, i)
            i = _skip_ws(text, i)
            if not isinstance(key, str) or not text.startswith(":", i):
                raise ValueError(f"malformed object at offset {i}")
            i = _skip_ws(text, i + 1)
            if key == "events" and text.startswith("[", i):
                items, i = _raw_array(text, i)
            elif key == "events":
                raise ValueError("'events' must be a JSON array")
            else:
                _, i = _DECODER.raw_decode(text, i)
            i = _skip_ws(text, i)
            if text.startswith(",", i):
                i = _skip_ws(text, i + 1)
            elif not text.startswith("}", i):
                raise ValueError(f"expected ',' or '}}' at offset {i}")
        i += 1
        if items is None:
            raise ValueError("the body object has no 'events' array")
    else:
        raise ValueError("the body must be a JSON array or an object with an 'events' array")
    if _skip_ws(text, i) != len(text):
        raise ValueError(f"unexpected data after the batch at offset {i}")
    return items


# --- faults -----------------------------------------------------------------------------------


def _check_fault(item: object) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ValueError(f"a fault must be an object, got {item!r}")
    keys = set(item)
    status = item.get("status")
    if (
        (keys == {"hang"} and item["hang"] is True)
        or (keys == {"reset"} and item["reset"] is True)
        or (keys == {"delay"} and _is_seconds(item["delay"]))
        or (
            isinstance(status, int)
            and 100 <= status <= 599
            and keys <= {"status", "retry_after"}
            and _is_seconds(item.get("retry_after", 0))
        )
    ):
        return dict(item)
    raise ValueError(
        f"unknown fault {item!r}: expected {{'status': N[, 'retry_after': s]}}, "
        "{'delay': s}, {'hang': true} or {'reset': true}"
    )


def _is_seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _mode_fault(mode: str) -> dict[str, Any] | None:
    fixed = {"ok": None, "down": {"status": 503}, "hang": {"hang": True}, "reset": {"reset": True}}
    return fixed[mode] if mode in fixed else {"status": int(mode.split(":")[1])}


# --- storage and state ------------------------------------------------------------------------


class _State:
    """The SQLite store, counters, fault script and request log, all behind one lock."""

    def __init__(self, db: str, validate: bool) -> None:
        self.validate = validate
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(db, check_same_thread=False)
        if db != ":memory:" and not db.startswith("file::memory:"):
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, workflow_id TEXT,"
            " type TEXT, raw TEXT NOT NULL, received_at REAL NOT NULL)"
        )
        self.conn.execute("CREATE INDEX IF NOT EXISTS events_wf ON events (workflow_id, event_id)")
        self.conn.commit()
        self.script: collections.deque[dict[str, Any]] = collections.deque()
        self.mode = "ok"
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.batches = 0
        self.received = 0
        self.duplicates = 0
        self.by_status: collections.Counter[str] = collections.Counter()
        self.log: list[dict[str, Any]] = []

    def next_fault(self) -> dict[str, Any] | None:
        with self.lock:
            return self.script.popleft() if self.script else _mode_fault(self.mode)

    def set_faults(self, script: Sequence[object] | None, mode: str | None) -> None:
        faults = [_check_fault(item) for item in script or ()]
        if mode is not None and (not isinstance(mode, str) or not _MODE_RE.match(mode)):
            raise ValueError(f"unknown mode {mode!r}: use ok, down, hang, reset or status:NNN")
        with self.lock:
            if script is not None:
                self.script = collections.deque(faults)
            if mode is not None:
                self.mode = mode

    def clear_faults(self) -> None:
        with self.lock:
            self.script.clear()
            self.mode = "ok"

    def record(self, outcome: str, entry: dict[str, Any]) -> None:
        with self.lock:
            self.by_status[outcome] += 1
            self.log.append(entry)

    def store(self, rows: list[tuple[str, str | None, str | None, str]]) -> tuple[int, int]:
        now = time.time()
        with self.lock:
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)", [(*r, now) for r in rows]
            )
            self.conn.commit()
            accepted = self.conn.total_changes - before
            self.batches += 1
            self.received += len(rows)
            self.duplicates += len(rows) - accepted
        return accepted, len(rows) - accepted

    def raw_events(self, workflow_id: str | None, event_type: str | None) -> list[str]:
        query, args = "SELECT raw FROM events WHERE 1=1", list[str]()
        if workflow_id is not None:
            query, args = query + " AND workflow_id = ?", [*args, workflow_id]
        if event_type is not None:
            query, args = query + " AND type = ?", [*args, event_type]
        with self.lock:
            return [row[0] for row in self.conn.execute(query + " ORDER BY event_id", args)]

    def stats(self) -> dict[str, Any]:
        with self.lock:
            (stored,) = self.conn.execute("SELECT COUNT(*) FROM events").fetchone()
            return {
                "received_batches": self.batches,
                "received_events": self.received,
                "stored_events": stored,
                "duplicates": self.duplicates,
                "requests_by_status": dict(self.by_status),
            }

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(entry) for entry in self.log]

    def clear(self) -> None:
        with self.lock:
            self.conn.execute("DELETE FROM events")
            self.conn.commit()
            self._reset_counters()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


# --- HTTP -------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Polled by serve_forever; a short interval keeps stop() fast.
    poll_interval = 0.02

    def __init__(self, port: int, state: _State, verbose: bool) -> None:
        self.state = state
        self.verbose = verbose
        self.stopping = threading.Event()
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._aborted: set[socket.socket] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn, but remembering each connection so stop() can cut it.
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self._conn_lock:
            self._conns[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(request, None)
                self._aborted.discard(request)

    def abort(self, sock: socket.socket) -> None:
        """Make the coming close send a TCP RST instead of a FIN."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._conn_lock:
            self._aborted.add(sock)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            aborted = request in self._aborted
        if aborted:
            # The base class would shutdown(SHUT_WR) first, sending a FIN before the RST.
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away mid-request, and connections cut by stop(), are expected.
        if self.stopping.is_set() or isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def cut_connections(self, timeout: float) -> None:
        """Wake hung handlers, cut every open connection, and wait up to ``timeout`` seconds."""
        self.stopping.set()
        with self._conn_lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, delayed ACKs add ~40 ms to every keep-alive request (measured).
    disable_nagle_algorithm = True
    server_version = "tracker-collector/1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _reply(self, status: int, payload: object, headers: Mapping[str, str] = {}) -> None:
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length)

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return parts.path.rstrip("/") or "/", parse_qs(parts.query)

    def do_GET(self) -> None:
        path, query = self._route()
        state = self.server.state
        if path == "/events":
            if unknown := set(query) - {"workflow_id", "type"}:
                self._reply(400, {"error": f"unknown query parameters {sorted(unknown)}"})
                return
            wf, t = query.get("workflow_id", [None])[-1], query.get("type", [None])[-1]
            self._reply(200, "[" + ",".join(state.raw_events(wf, t)) + "]")
        elif path == "/stats":
            self._reply(200, state.stats())
        elif path == "/requests":
            self._reply(200, state.requests())
        elif path == "/health":
            self._reply(200, {"ok": True})
        else:
            self._reply(404, {"error": f"no such path {path!r}"})

    def do_DELETE(self) -> None:
        path, _ = self._route()
        if path == "/events":
            self.server.state.clear()
        elif path == "/_faults":
            self.server.state.clear_faults()
        else:
            self._reply(404, {"error": f"no such path {path!r}"})
            return
        self._reply(200, {"ok": True})

    def do_POST(self) -> None:
        path, _ = self._route()
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True  # the framing is lost
            self._reply(400, {"error": f"unreadable body: {exc}"})
            return
        if path == "/events":
            self._post_events(body)
        elif path == "/_faults":
            try:
                spec = json.loads(body)
                if not isinstance(spec, dict) or not set(spec) <= {"script", "mode"}:
                    raise ValueError('expected {"script": [...]} and/or {"mode": "..."}')
                script = spec.get("script")
                if script is not None and not isinstance(script, list):
                    raise ValueError("'script' must be a list")
                self.server.state.set_faults(script, spec.get("mode"))
            except ValueError as exc:
                self._reply(400, {"error": str(exc)})
                return
            self._reply(200, {"ok": True})
        else:
            self._reply(404, {"error": f"no such path {path!r}"})

    def _parse_events(self, body: bytes) -> list[tuple[str, str | None, str | None, str]]:
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as exc:
                raise ValueError(f"bad gzip body: {exc}") from exc
        rows = []
        for index, (event, raw) in enumerate(split_batch(body.decode("utf-8"))):
            if not isinstance(event, dict) or not isinstance(event.get("event_id"), str):
                raise ValueError(f"event {index} is not an object with a string 'event_id'")
            if self.server.state.validate:
                from tracker.events import parse_event

                parse_event(event)
            wf, t = event.get("workflow_id"), event.get("type")
            rows.append((event["event_id"], _str_or_none(wf), _str_or_none(t), raw))
        return rows

    def _post_events(self, body: bytes) -> None:
        state = self.server.state
        entry: dict[str, Any] = {
            "at": time.time(),
            "bytes": len(body),
            "content_encoding": self.headers.get("Content-Encoding"),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "status": None,
            "fault": None,
            "event_ids": None,
        }
        rows, error = None, ""
        try:
            rows = self._parse_events(body)
            entry["event_ids"] = [row[0] for row in rows]
        except ValueError as exc:  # includes JSON and UTF-8 decode errors
            error = str(exc)
        fault = state.next_fault() or {}
        entry["fault"] = fault or None
        if "delay" in fault and self.server.stopping.wait(fault["delay"]):
            self.close_connection = True
            return
        if "hang" in fault or "reset" in fault:
            state.record(next(iter(fault)), entry)
            if "hang" in fault:
                self.server.stopping.wait()
            else:
                self.server.abort(self.connection)
            self.close_connection = True
            return
        headers: dict[str, str] = {}
        payload: dict[str, object]
        if "status" in fault:
            status, payload = fault["status"], {"error": "injected fault"}
            if "retry_after" in fault:
                headers["Retry-After"] = f"{fault['retry_after']:g}"
        elif rows is None:
            status, payload = 400, {"error": error}
        else:
            accepted, duplicates = state.store(rows)
            status, payload = 200, {"accepted": accepted, "duplicates": duplicates}
        entry["status"] = status
        state.record(str(status), entry)
        self._reply(status, payload, headers)


# --- public API -------------------------------------------------------------------------------


class Collector:
    """An in-process collector serving on 127.0.0.1 from a background thread.

    ``port=0`` picks a free port; ``db`` is a SQLite path (WAL mode) or ``":memory:"``.
    With ``validate=True``, each event must parse with :func:`tracker.events.parse_event`
    (else the batch gets 400). ``stop()`` returns promptly even while requests hang.

    >>> with Collector() as c:
    ...     c.url.startswith("http://127.0.0.1:"), c.stats()["stored_events"]
    (True, 0)
    """

    def __init__(
        self,
        port: int = 0,
        db: str | os.PathLike[str] = ":memory:",
        *,
        validate: bool = False,
        verbose: bool = False,
    ) -> None:
        self._port, self._db = port, os.fspath(db)
        self._validate, self._verbose = validate, verbose
        self._server: _Server | None = None
        self._state: _State | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Collector:
        """Bind and start serving; returns ``self``. Raises ``RuntimeError`` if started."""
        if self._server is not None:
            raise RuntimeError("collector already started")
        self._state = _State(self._db, self._validate)
        try:
            self._server = _Server(self._port, self._state, self._verbose)
        except BaseException:
            self._state.close()  # e.g. the port is taken
            raise
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(self._server.poll_interval,),
            name=f"collector:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Stop serving, cut open (even hung) connections, and close the database. Idempotent."""
        server, state, thread = self._server, self._state, self._thread
        if server is None or state is None or thread is None:
            return
        self._server = None
        server.shutdown()
        server.cut_connections(timeout)
        server.server_close()
        thread.join(timeout)
        state.close()

    def __enter__(self) -> Collector:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("collector not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``"http://127.0.0.1:54321"``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        """Where trackers POST batches: ``url + "/events"``."""
        return self.url + "/events"

    def _live(self) -> _State:
        if self._state is None or self._server is None:
            raise RuntimeError("collector not started")
        return self._state

    def events(
        self, workflow_id: str | None = None, event_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored events in ``event_id`` order, optionally filtered, as parsed JSON objects."""
        return [json.loads(raw) for raw in self._live().raw_events(workflow_id, event_type)]

    def stats(self) -> dict[str, Any]:
        """The ``GET /stats`` counters."""
        return self._live().stats()

    def requests(self) -> list[dict[str, Any]]:
        """The ``GET /requests`` log: one record per ``POST /events``, in arrival order."""
        return self._live().requests()

    def set_faults(self, script: Sequence[Mapping[str, object]]) -> None:
        """Replace the fault script, e.g. ``[{"status": 500}, {"hang": True}]``."""
        self._live().set_faults(list(script), None)

    def set_mode(self, mode: str) -> None:
        """Set the persistent mode: ``ok``, ``down``, ``hang``, ``reset`` or ``status:NNN``."""
        self._live().set_faults(None, mode)

    def clear_faults(self) -> None:
        """Drop the script and return to mode ``ok``."""
        self._live().clear_faults()

    def clear(self) -> None:
        """Forget all events, counters and the request log (``DELETE /events``)."""
        self._live().clear()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the collector until SIGTERM or SIGINT; returns the exit code (0)."""
    parser = argparse.ArgumentParser(
        prog="python -m tracker.collector",
        description="Serve the event collector on 127.0.0.1 until SIGTERM or SIGINT; prints "
        '{"url": ...} once listening.',
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port)")
    parser.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    parser.add_argument("--validate", action="store_true", help="reject invalid events (400)")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    use_sigwait = hasattr(signal, "pthread_sigmask")
    if use_sigwait:
        # Blocked before any thread starts, so every thread inherits the mask and the
        # signals wait for sigwait() in this thread: no handler runs in a locked region.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    stopped = threading.Event()
    if not use_sigwait:
        for signum in stop_signals:
            signal.signal(signum, lambda *_: stopped.set())
    collector = Collector(args.port, args.db, validate=args.validate, verbose=args.verbose)
    collector.start()
    try:
        print(json.dumps({"url": collector.url}), flush=True)
        if use_sigwait:
            signal.sigwait(stop_signals)
        else:
            while not stopped.wait(0.2):
                pass
    finally:
        collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
