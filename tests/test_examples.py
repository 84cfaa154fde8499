"""Run each script in `examples/` as a user would, in a subprocess, and check its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

EXPECTED: dict[str, list[str]] = {
    "hello_effect.py": [
        "10",
        "double of 21 is 42",
        "'x' is not a number",
        "-4 is negative",
        "failed with [Negative(value=-1)]",
        "exit: success=False",
    ],
    "services_and_layers.py": [
        "-- provide: the layer is built for each run",
        "open connection #1",
        "close connection #1",
        "hello ada, visit #1",
        "open connection #2",
        "close connection #2",
        "-- ManagedRuntime: built once, released when the block ends",
        "open connection #3",
        "hello ada, visit #2",
        "hello grace, visit #1",
        "close connection #3",
        "connections opened: 3",
    ],
    "concurrency.py": [
        "joined fast (0.01s) and slow (0.05s)",
        "  background interrupted",
        "background fiber interrupted: True",
        "  mirror-a interrupted",
        "race won by mirror-b (0.01s)",
        "  too slow interrupted",
        "timeout: Operation timed out after '20ms'",
    ],
}


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_example_is_checked() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    assert scripts == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    result = run_example(name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    missing = [line for line in EXPECTED[name] if line not in lines]
    assert not missing, f"missing lines {missing} in output:\n{result.stdout}"
    # Lines appear in the order the script prints them.
    positions = [lines.index(line) for line in EXPECTED[name]]
    assert positions == sorted(positions), result.stdout


def test_bounded_all_runs_three_at_a_time() -> None:
    result = run_example("concurrency.py")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("all: ")]
    assert line.startswith("all: 6 results, 3 at a time, in ")
