"""The HTTP collector, over real loopback HTTP: storage, dedupe, ordering, faults, lifecycle."""

from __future__ import annotations

import gzip
import http.client
import json
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tracker.collector import Collector, split_batch
from tracker.events import Event, StepCompleted, StepStarted, WorkflowStarted

if TYPE_CHECKING:
    from tests.tracker.conftest import CollectorProcess


def make_events(n: int, workflow_id: str = "wf-1") -> list[Event]:
    """``n`` valid events of one run, alternating types, with seq 0..n-1."""
    out: list[Event] = []
    for seq in range(n):
        common: dict[str, Any] = {
            "workflow_id": workflow_id,
            "workflow_name": "orders",
            "attempt": 1,
            "seq": seq,
        }
        if seq % 2 == 0:
            out.append(StepStarted(step_name=f"s{seq}", **common))
        else:
            out.append(StepCompleted(step_name=f"s{seq}", duration_ms=1.0, **common))
    return out


def body(events: list[Event]) -> str:
    """The wire form a tracker sends: a JSON array of ``to_json()`` texts."""
    return "[" + ",".join(e.to_json(env="test") for e in events) + "]"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # Module-scoped: building an httpx.Client (its SSL context) costs ~50 ms here.
    with httpx.Client(timeout=5.0) as c:
        yield c


def post(client: httpx.Client, collector: Collector, events: list[Event]) -> httpx.Response:
    return client.post(
        collector.events_url, content=body(events), headers={"Content-Type": "application/json"}
    )


# --- storage ----------------------------------------------------------------------------------


def test_post_then_get_returns_events_exactly_as_received(
    collector: Collector, client: httpx.Client
) -> None:
    events = make_events(10)
    response = post(client, collector, events)
    assert response.status_code == 200
    assert response.json() == {"accepted": 10, "duplicates": 0}
    assert response.headers["content-length"] == str(len(response.content))
    got = client.get(collector.events_url)
    assert got.status_code == 200
    assert got.text == body(events)  # raw text, in emit order
    assert collector.events() == [e.to_dict(env="test") for e in events]


def test_object_form_with_odd_whitespace(collector: Collector, client: httpx.Client) -> None:
    events = make_events(3)
    text = '\n{ "batch": 1 ,\n "events" : [ ' + " ,\n".join(e.to_json() for e in events) + " ] }\n"
    assert client.post(collector.events_url, content=text).json()["accepted"] == 3
    assert (
        client.get(collector.events_url).text == "[" + ",".join(e.to_json() for e in events) + "]"
    )


def test_dedupe_by_event_id(collector: Collector, client: httpx.Client) -> None:
    events = make_events(6)
    assert post(client, collector, events[:4]).json() == {"accepted": 4, "duplicates": 0}
    # A retried batch overlapping the first, plus an in-batch duplicate.
    retry = [*events[2:], events[5]]
    assert post(client, collector, retry).json() == {"accepted": 2, "duplicates": 3}
    assert [e["event_id"] for e in collector.events()] == [e.event_id for e in events]
    stats = collector.stats()
    assert stats["received_batches"] == 2
    assert stats["received_events"] == 9
    assert stats["stored_events"] == 6
    assert stats["duplicates"] == 3
    assert stats["requests_by_status"] == {"200": 2}


def test_events_come_back_in_emit_order(collector: Collector, client: httpx.Client) -> None:
    events = make_events(200)
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    for i in range(0, 200, 30):
        assert post(client, collector, shuffled[i : i + 30]).status_code == 200
    assert [e["seq"] for e in collector.events()] == list(range(200))


def test_filters(collector: Collector, client: httpx.Client) -> None:
    a, b = make_events(4, "wf-a"), make_events(3, "wf-b")
    post(client, collector, a + b)
    assert [e["workflow_id"] for e in collector.events("wf-b")] == ["wf-b"] * 3
    got = client.get(collector.events_url, params={"workflow_id": "wf-a", "type": "step.started"})
    assert [e["event_id"] for e in got.json()] == [a[0].event_id, a[2].event_id]
    assert client.get(collector.events_url, params={"type": "step.completed"}).json() == [
        e.to_dict(env="test") for e in (a[1], a[3], b[1])
    ]
    assert client.get(collector.events_url, params={"workflow_id": "nope"}).json() == []
    assert client.get(collector.events_url, params={"wokflow_id": "x"}).status_code == 400


def test_gzip_body(collector: Collector, client: httpx.Client) -> None:
    events = make_events(50)
    response = client.post(
        collector.events_url,
        content=gzip.compress(body(events).encode()),
        headers={"Content-Encoding": "gzip"},
    )
    assert response.json() == {"accepted": 50, "duplicates": 0}
    assert collector.requests()[0]["content_encoding"] == "gzip"
    bad = client.post(
        collector.events_url, content=b"not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert bad.status_code == 400


def test_chunked_body(collector: Collector, client: httpx.Client) -> None:
    text = body(make_events(5)).encode()
    response = client.post(collector.events_url, content=iter([text[:10], text[10:]]))
    assert response.json() == {"accepted": 5, "duplicates": 0}


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'{"a": 1}',
        b'{"events": 5}',
        b"5",
        b"[1]",
        b'[{"type": "x"}]',
        b"[] []",
        b"\xff\xfe",
        b"",
    ],
)
def test_malformed_bodies_are_rejected(
    collector: Collector, client: httpx.Client, payload: bytes
) -> None:
    response = client.post(collector.events_url, content=payload)
    assert response.status_code == 400
    assert "error" in response.json()
    assert collector.stats()["stored_events"] == 0
    assert collector.stats()["requests_by_status"] == {"400": 1}


def test_split_batch_keeps_raw_text() -> None:
    assert split_batch(' [ {"a":1} , 2 ] ') == [({"a": 1}, '{"a":1}'), (2, "2")]
    assert split_batch('{"x": [1], "events": []}') == []
    with pytest.raises(ValueError):
        split_batch("[1,]")


def test_validate_option_rejects_invalid_events(tmp_path: Path, client: httpx.Client) -> None:
    with Collector(db=tmp_path / "v.db", validate=True) as strict:
        good = make_events(2)
        assert post(client, strict, good).status_code == 200
        bad = good[0].to_dict()
        bad["attempt"] = 0
        response = client.post(strict.events_url, json=[bad])
        assert response.status_code == 400
        assert "'attempt'" in response.json()["error"]


def test_clear_health_and_unknown_paths(collector: Collector, client: httpx.Client) -> None:
    post(client, collector, make_events(3))
    assert client.delete(collector.events_url).status_code == 200
    assert collector.events() == []
    assert collector.stats()["received_batches"] == 0
    assert client.get(collector.url + "/health").json() == {"ok": True}
    assert client.get(collector.url + "/nope").status_code == 404


def test_sqlite_file_persists_across_restarts(tmp_path: Path, client: httpx.Client) -> None:
    events = make_events(5)
    with Collector(db=tmp_path / "p.db") as first:
        post(client, first, events)
    with Collector(db=tmp_path / "p.db") as second:
        assert [e["event_id"] for e in second.events()] == [e.event_id for e in events]
        assert post(client, second, events).json() == {"accepted": 0, "duplicates": 5}


# --- HTTP behaviour ---------------------------------------------------------------------------


def test_keep_alive_and_latency(collector: Collector) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=5)
    payload = body(make_events(100)).encode()
    timings = []
    try:
        for _ in range(30):
            started = time.perf_counter()
            conn.request("POST", "/events", body=payload)
            response = conn.getresponse()
            response.read()
            timings.append(time.perf_counter() - started)
            assert response.status == 200
            assert not response.will_close
        # Delayed ACKs against Nagle's algorithm would cost ~40 ms per request.
        assert statistics.median(timings) < 0.03
    finally:
        conn.close()


# --- faults -----------------------------------------------------------------------------------


def test_status_faults_apply_in_order_and_store_nothing(
    collector: Collector, client: httpx.Client
) -> None:
    collector.set_faults(
        [{"status": 500}, {"status": 429, "retry_after": 1.5}, {"status": 429, "retry_after": 2}]
    )
    events = make_events(3)
    first = post(client, collector, events)
    assert first.status_code == 500
    second = post(client, collector, events)
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1.5"
    third = post(client, collector, events)
    assert third.headers["Retry-After"] == "2"
    assert collector.events() == []
    assert post(client, collector, events).json() == {"accepted": 3, "duplicates": 0}
    assert collector.stats()["requests_by_status"] == {"500": 1, "429": 2, "200": 1}
    assert [r["status"] for r in collector.requests()] == [500, 429, 429, 200]
    # A faulted request still logs the event ids it carried (to check retries resend them).
    assert all(r["event_ids"] == [e.event_id for e in events] for r in collector.requests())


def test_delay_fault_then_store(collector: Collector, client: httpx.Client) -> None:
    collector.set_faults([{"delay": 0.3}])
    started = time.monotonic()
    response = post(client, collector, make_events(2))
    assert time.monotonic() - started >= 0.3
    assert response.json() == {"accepted": 2, "duplicates": 0}


def test_hang_fault_times_out_the_client(collector: Collector, client: httpx.Client) -> None:
    collector.set_faults([{"hang": True}])
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post(collector.events_url, content=body(make_events(2)), timeout=0.3)
    assert time.monotonic() - started < 2
    assert collector.events() == []
    assert post(client, collector, make_events(1)).status_code == 200
    assert collector.stats()["requests_by_status"] == {"hang": 1, "200": 1}


def test_reset_fault_is_a_transport_error(collector: Collector, client: httpx.Client) -> None:
    events = make_events(2)
    collector.set_faults([{"reset": True}])
    with pytest.raises(httpx.TransportError):
        post(client, collector, events)
    assert collector.events() == []
    assert post(client, collector, events).json()["accepted"] == 2
    log = collector.requests()
    assert [r["fault"] for r in log] == [{"reset": True}, None]
    assert log[0]["event_ids"] == log[1]["event_ids"]


def test_persistent_modes(collector: Collector, client: httpx.Client) -> None:
    events = make_events(1)
    collector.set_mode("down")
    assert [post(client, collector, events).status_code for _ in range(3)] == [503] * 3
    collector.set_mode("status:418")
    assert post(client, collector, events).status_code == 418
    collector.set_mode("reset")
    with pytest.raises(httpx.TransportError):
        post(client, collector, events)
    collector.set_mode("hang")
    with pytest.raises(httpx.ReadTimeout):
        client.post(collector.events_url, content=body(events), timeout=0.2)
    # The script takes precedence over the mode, and DELETE /_faults clears both.
    collector.set_faults([{"status": 502}])
    assert post(client, collector, events).status_code == 502
    assert client.delete(collector.url + "/_faults").status_code == 200
    assert post(client, collector, events).status_code == 200
    collector.set_mode("down")
    collector.set_mode("ok")
    assert post(client, collector, events).json() == {"accepted": 0, "duplicates": 1}


def test_faults_over_http_and_their_validation(collector: Collector, client: httpx.Client) -> None:
    faults_url = collector.url + "/_faults"
    response = client.post(faults_url, json={"script": [{"status": 500}], "mode": "down"})
    assert response.status_code == 200
    events = make_events(1)
    assert [post(client, collector, events).status_code for _ in range(2)] == [500, 503]
    for bad in [
        {"script": [{"status": 1000}]},
        {"script": [{"explode": True}]},
        {"script": [{"delay": -1}]},
        {"mode": "sideways"},
        {"script": 5},
        [1],
        {"script": [{"status": 500, "delay": 1}]},
        {"other": 1},
    ]:
        assert client.post(faults_url, json=bad).status_code == 400, bad
    with pytest.raises(ValueError, match="unknown fault"):
        collector.set_faults([{"hang": False}])
    with pytest.raises(ValueError, match="unknown mode"):
        collector.set_mode("status:99")


# --- lifecycle --------------------------------------------------------------------------------


def test_stop_returns_promptly_while_a_request_hangs(tmp_path: Path) -> None:
    collector = Collector(db=tmp_path / "h.db").start()
    collector.set_mode("hang")
    errors: list[BaseException] = []
    arrived = threading.Event()

    def hang() -> None:
        try:
            with httpx.Client(timeout=30) as c:
                arrived.set()
                c.post(collector.events_url, content=body(make_events(1)))
        except httpx.TransportError as exc:
            errors.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    # An idle keep-alive connection must not hold stop() up either.
    idle = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=5)
    idle.request("GET", "/health")
    idle.getresponse().read()
    arrived.wait(5)
    deadline = time.monotonic() + 5
    while collector.stats()["requests_by_status"].get("hang") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    collector.stop()
    assert time.monotonic() - started < 1.0
    thread.join(2)
    assert not thread.is_alive()
    assert len(errors) == 1
    idle.close()
    collector.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = collector.url


def test_collector_process_cli(collector_process: CollectorProcess, client: httpx.Client) -> None:
    assert collector_process.url.startswith("http://127.0.0.1:")
    events = make_events(4)
    response = client.post(collector_process.events_url, content=body(events))
    assert response.json() == {"accepted": 4, "duplicates": 0}
    assert client.get(collector_process.events_url).text == body(events)
    collector_process.set_faults([{"status": 500}])
    assert client.post(collector_process.events_url, content=body(events)).status_code == 500
    assert collector_process.stats()["requests_by_status"] == {"200": 1, "500": 1}
    assert [e["seq"] for e in collector_process.events(event_type="step.started")] == [0, 2]
    assert collector_process.terminate() == 0


def test_cli_exits_cleanly_on_sigint_with_a_hung_request(
    start_collector_process: Callable[[Path], CollectorProcess], tmp_path: Path
) -> None:
    process = start_collector_process(tmp_path / "cli.db")
    events = make_events(3)
    with httpx.Client(timeout=0.3) as c:
        assert c.post(process.events_url, content=body(events)).status_code == 200
        process.set_mode("hang")
        with pytest.raises(httpx.ReadTimeout):
            c.post(process.events_url, content=body(make_events(1)))
    started = time.monotonic()
    process.proc.send_signal(signal.SIGINT)
    assert process.proc.wait(3) == 0
    assert time.monotonic() - started < 2
    # What was acknowledged is in the SQLite file.
    with Collector(db=tmp_path / "cli.db") as reopened:
        assert [e["event_id"] for e in reopened.events()] == [e.event_id for e in events]


def test_workflow_started_input_survives_the_trip(
    collector: Collector, client: httpx.Client
) -> None:
    event = WorkflowStarted(workflow_id="w", workflow_name="n", input={"ü": [1, 2.5, None]})
    post(client, collector, [event])
    (stored,) = collector.events()
    assert stored["input"] == {"ü": [1, 2.5, None]}
    assert json.loads(client.get(collector.events_url).text)[0] == stored
