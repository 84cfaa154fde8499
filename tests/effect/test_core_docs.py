"""Every ```python block of the effect core guide runs, as written, as its own test.

Each block is executed in a fresh namespace, as a script would be; blocks that need
an event loop call `anyio.run` themselves. Blocks fenced as ```python-skip are not
run (they show code that is meant to fail a type check, or pseudo-code).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "effect" / "core.md", ROOT / "docs" / "design" / "typing.md"]

# An opening fence at the start of a line, exactly "```python" (not "```python-skip"),
# up to the next closing fence.
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def _blocks(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    found: list[tuple[str, str]] = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append((f"{path.name}:{line}", match.group(1)))
    return found


def _all_blocks() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in DOCS:
        if path.exists():
            found.extend(_blocks(path))
    return found


BLOCKS = _all_blocks()


def test_the_guide_has_examples() -> None:
    assert (ROOT / "docs" / "effect" / "core.md").exists()
    assert len(BLOCKS) >= 20


def test_skip_fences_are_not_collected() -> None:
    sample = "```python\nx = 1\n```\n\n```python-skip\nraise SystemExit\n```\n"
    assert [code for code in _BLOCK.findall(sample)] == ["x = 1\n"]


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_block_runs(where: str, code: str) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_block_{where}"}
    exec(compile(code, where, "exec"), namespace)
