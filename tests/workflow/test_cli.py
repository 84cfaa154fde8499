"""`python -m workflow`: each command run as a real subprocess against a temp database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tracker.collector import Collector
from workflow.cli import build_parser, enqueue
from workflow.storage import RunStatus, SqliteStorage

ROOT = Path(__file__).resolve().parents[2]
FAST = {"cool_off": 0, "ship_seconds": 0.05, "flaky": 1}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def cli(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _order(order_id: str, **extra: object) -> str:
    return json.dumps({"order_id": order_id, **FAST, **extra})


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "submit", "worker", "list", "show", "cancel", "demo"):
        with pytest.raises(SystemExit) as exit:
            build_parser().parse_args([command, "--help"])
        assert exit.value.code == 0
        out = capsys.readouterr().out
        assert f"python -m workflow {command}" in out
        assert len(out.splitlines()) > 4, out


def test_run_list_show_cancel(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    # A queued run of a workflow `run` does not know: it must be left alone.
    with SqliteStorage(db) as storage:
        enqueue(storage, "invoice", {"n": 1}, run_id="inv-1")

    ok = cli(
        "run", "workflow.demo_workflows:order", "--input", _order("A-1"), "--db", db,
        "--id", "A-1", cwd=tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["tracking"] == "TRACK-A-1"
    assert "run A-1 completed" in ok.stderr

    # Four failing attempts: the run fails, exit code 1, the error on stderr.
    failed = cli(
        "run", "workflow.demo_workflows:order", "--input", _order("A-2", flaky=9), "--db", db,
        "--id", "A-2", cwd=tmp_path,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert "error: run 'A-2' failed" in failed.stderr
    assert "PaymentGatewayTimeout" in failed.stderr

    # `run` with the id of a finished run waits for nothing and prints its result again.
    again = cli("run", "workflow.demo_workflows:order", "--db", db, "--id", "A-1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(ok.stdout)

    listed = cli("list", "--db", db, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in listed.stdout.splitlines()[1:]}
    assert rows == {
        "A-1": ["order", "completed"],
        "A-2": ["order", "failed"],
        "inv-1": ["invoice", "queued"],
    }
    only_failed = cli("list", "--db", db, "--status", "failed", cwd=tmp_path)
    assert [line.split()[0] for line in only_failed.stdout.splitlines()[1:]] == ["A-2"]

    picture = tmp_path / "run.png"
    shown = cli("show", "A-1", "--db", db, "--plot", str(picture), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert picture.read_bytes().startswith(b"\x89PNG"), "show --plot wrote no PNG"
    out = shown.stdout
    assert "status    completed" in out
    history = out[out.index("History") : out.index("Events")]
    for location, status, attempt in [
        ("reserve-stock", "completed", "1"),
        ("charge-card", "completed", "2"),
        ("cool-off", "completed", "0"),
        ("ship", "completed", "1"),
        ("notify", "completed", "1"),
    ]:
        assert any(line.split()[:4] == [location, line.split()[1], status, attempt]
                   for line in history.splitlines()[2:]), (location, history)  # fmt: skip
    timeline = out[out.index("Events") :]
    assert "step.failed" in timeline and "phase=user will_retry=yes" in timeline
    assert "retry.scheduled" in timeline and "workflow.completed" in timeline
    # No collector was given: the events wait in the outbox.
    assert "none delivered to a tracker yet" in timeline

    assert "phase=user will_retry=no" in cli("show", "A-2", "--db", db, cwd=tmp_path).stdout

    queued = cli(
        "submit", "workflow.demo_workflows:order", "--input", _order("Q-1"), "--db", db,
        "--id", "Q-1", cwd=tmp_path,
    )  # fmt: skip
    assert queued.returncode == 0 and queued.stdout.strip() == "Q-1", queued.stderr
    cancelled = cli("cancel", "Q-1", "--db", db, "--reason", "changed my mind", cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "run Q-1 cancelled: changed my mind" in cancelled.stdout
    shown_q = cli("show", "Q-1", "--db", db, cwd=tmp_path).stdout
    assert "status    cancelled" in shown_q and "workflow.cancelled" in shown_q
    assert "already cancelled" in cli("cancel", "Q-1", "--db", db, cwd=tmp_path).stdout

    with SqliteStorage(db) as storage:
        invoice = storage.get_run("inv-1")
    assert invoice is not None and invoice.status is RunStatus.QUEUED

    missing = cli("show", "nope", "--db", db, cwd=tmp_path)
    assert missing.returncode == 1 and "no run with id 'nope'" in missing.stderr
    assert cli("cancel", "nope", "--db", db, cwd=tmp_path).returncode == 1
    assert cli("list", "--db", str(tmp_path / "absent.db"), cwd=tmp_path).returncode == 1
    bad = cli("run", "workflow.demo_workflows:nothing", "--db", db, cwd=tmp_path)
    assert bad.returncode == 2 and "has no attribute 'nothing'" in bad.stderr


@pytest.mark.slow
def test_worker_runs_queued_work_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    with SqliteStorage(db) as storage:
        enqueue(storage, "order", {"order_id": "W-1", **FAST, "ship_seconds": 60}, run_id="W-1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "workflow", "worker", "--db", db,
         "--module", "workflow.demo_workflows", "--owner", "test-worker"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        with SqliteStorage(db) as storage:

            def shipping() -> bool:
                return any(
                    e.location == "ship" and e.status == "started"
                    for e in storage.load_history("W-1")
                )

            _wait_for(shipping, 30, "the worker to start step 'ship'")
            # A run a live worker executes cannot be cancelled from another process.
            refused = cli("cancel", "W-1", "--db", db, cwd=tmp_path)
            assert refused.returncode == 1
            assert "being executed by test-worker" in refused.stderr

            worker.send_signal(signal.SIGTERM)
            out, _ = worker.communicate(timeout=15)
            assert worker.returncode == 0, out
            assert "serving order" in out and "worker stopped" in out

            run = storage.get_run("W-1")
            assert run is not None
            assert run.status is RunStatus.PAUSED and run.lease_owner is None
            events = [json.loads(e.payload_json) for e in storage.run_events("W-1")]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    types = [e["type"] for e in events]
    assert types[-2:] == ["step.interrupted", "workflow.paused"]
    assert events[-2]["step_name"] == "ship" and events[-2]["reason"] == "shutdown"
    assert events[-1]["reason"] == "engine shutdown"
    # Now paused, it can be cancelled here.
    cancelled = cli("cancel", "W-1", "--db", db, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    began = time.monotonic()
    done = cli("demo", "--keep", str(keep), cwd=tmp_path, timeout=90)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "SIGKILL -> worker 1" in out
    timeline = out[out.index("What the collector received") : out.index("What to look for")]
    for expected in (
        "workflow.completed",
        "workflow.recovered",
        "retry.scheduled",
        "phase=crash will_retry=yes",
        "workflow.paused",
        "workflow.resumed",
    ):
        assert expected in timeline, expected
    assert "demo OK" in out
    assert {p.name for p in keep.iterdir()} >= {"workflows.db", "events.db", "worker-1.log"}
    assert took < 45, took


def test_run_delivers_its_events_to_a_collector(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    with Collector() as collector:
        done = cli(
            "run", "workflow.demo_workflows:order", "--input", _order("C-1"), "--db", db,
            "--id", "C-1", "--collector", collector.url, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        received = [e["type"] for e in sorted(collector.events("C-1"), key=lambda e: e["seq"])]
    assert received[:2] == ["workflow.queued", "workflow.started"]
    assert received[-1] == "workflow.completed"
    assert received.count("retry.scheduled") == 1  # flaky=1: one failed attempt
    shown = cli("show", "C-1", "--db", db, cwd=tmp_path).stdout
    assert f"Events ({len(received)}, times UTC; all delivered to a tracker)" in shown
