"""The static typing contract, checked by running the type checkers.

`tests/typing/` must pass mypy --strict and pyright strict (its `assert_type` checks
pin what they infer). Small snippets written here must be *rejected* at the lines
marked `# ERROR`: running an effect with an unprovided service, providing a layer
that covers only part of what an effect needs, and a gen body that yields an effect
whose error type its annotation does not allow.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING_DIR = ROOT / "tests" / "typing"

SNIPPET_HEADER = """\
from __future__ import annotations

from typing import Never

import effect as fx


class Tracker(fx.Tag["Tracker", list[str]]): ...


class Storage(fx.Tag["Storage", dict[str, int]]): ...


"""

SNIPPETS: dict[str, str] = {
    # (1) running an effect that needs a service nobody provided
    "snippet_run_unprovided": """
def prog() -> fx.Effect[int, Never, Storage]:
    return fx.service(Storage).map(len)


async def main() -> int:
    return await fx.run(prog())  # ERROR


def main_sync() -> int:
    return fx.run_sync(prog())  # ERROR
""",
    # (2) a layer that provides only part of what the effect needs
    "snippet_partial_layer": """
def prog() -> fx.Effect[int, Never, Tracker | Storage]:
    return fx.service(Tracker).zip(fx.service(Storage)).map(lambda p: len(p[0]) + len(p[1]))


tracker_only = fx.Layer.succeed(Tracker, [])


def main() -> int:
    return fx.run_sync(prog().provide(tracker_only))  # ERROR
""",
    # (3) a gen body that yields an effect failing with an error it does not declare
    "snippet_gen_wrong_error": """
def body() -> fx.Gen[int, str, Never]:
    ok = yield from fx.fail("fine").as_(1)
    bad = yield from fx.fail(1).as_(2)  # ERROR
    return ok + bad
""",
    # control: the checker really checks assert_type (a wrong one is reported)
    "snippet_assert_type_control": """
from typing import assert_type

assert_type(fx.succeed(1), fx.Effect[str, Never, Never])  # ERROR
""",
}


def _marked_lines(source: str) -> set[int]:
    return {i for i, line in enumerate(source.splitlines(), 1) if line.rstrip().endswith("# ERROR")}


@pytest.fixture(scope="module")
def snippet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("typing_snippets")
    for name, body in SNIPPETS.items():
        (directory / f"{name}.py").write_text(SNIPPET_HEADER + textwrap.dedent(body).lstrip())
    return directory


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["MYPYPATH"] = str(ROOT)
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _mypy(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, paths)])


def _pyright(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    # `--pythonpath` makes pyright resolve third-party imports (returns, anyio) in
    # this interpreter's environment even when the venv is not activated.
    return _run([sys.executable, "-m", "pyright", "--pythonpath", sys.executable, *map(str, paths)])


@pytest.fixture(scope="module")
def mypy_snippets(snippet_dir: Path) -> str:
    result = _mypy(sorted(snippet_dir.glob("*.py")))
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def pyright_snippets(snippet_dir: Path) -> str:
    result = _pyright(sorted(snippet_dir.glob("*.py")))
    return result.stdout + result.stderr


def _mypy_error_lines(output: str, name: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for m in re.finditer(rf"{re.escape(name)}\.py:(\d+): error: (.*)", output):
        found.setdefault(int(m.group(1)), []).append(m.group(2))
    return found


def _pyright_error_lines(output: str, name: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for m in re.finditer(rf"{re.escape(name)}\.py:(\d+):\d+ - error: (.*)", output):
        found.setdefault(int(m.group(1)), []).append(m.group(2))
    return found


def test_typing_folder_passes_mypy_strict() -> None:
    files = sorted(TYPING_DIR.glob("*.py"))
    assert files, "tests/typing holds the files to check"
    result = _mypy(files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_typing_folder_passes_pyright_strict() -> None:
    files = sorted(TYPING_DIR.glob("*.py"))
    result = _pyright(files)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "0 errors" in output, output


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_mypy_rejects_snippet(name: str, mypy_snippets: str) -> None:
    source = SNIPPET_HEADER + textwrap.dedent(SNIPPETS[name]).lstrip()
    errors = _mypy_error_lines(mypy_snippets, name)
    expected = _marked_lines(source)
    assert expected
    missing = expected - errors.keys()
    assert not missing, f"mypy accepted lines {sorted(missing)} of {name}:\n{mypy_snippets}"
    unexpected = errors.keys() - expected
    assert not unexpected, f"mypy errors on unmarked lines of {name}:\n{mypy_snippets}"


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_pyright_rejects_snippet(name: str, pyright_snippets: str) -> None:
    source = SNIPPET_HEADER + textwrap.dedent(SNIPPETS[name]).lstrip()
    errors = _pyright_error_lines(pyright_snippets, name)
    expected = _marked_lines(source)
    missing = expected - errors.keys()
    assert not missing, f"pyright accepted lines {sorted(missing)} of {name}:\n{pyright_snippets}"


def test_mypy_names_the_missing_service(mypy_snippets: str) -> None:
    errors = _mypy_error_lines(mypy_snippets, "snippet_run_unprovided")
    messages = " ".join(m for ms in errors.values() for m in ms)
    assert "Storage" in messages, mypy_snippets


def test_mypy_names_the_wrong_error_type(mypy_snippets: str) -> None:
    errors = _mypy_error_lines(mypy_snippets, "snippet_gen_wrong_error")
    messages = " ".join(m for ms in errors.values() for m in ms)
    assert "int" in messages and "str" in messages, mypy_snippets
