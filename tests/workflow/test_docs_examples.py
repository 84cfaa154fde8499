"""Every ```python block of the workflow guides runs, as written, as its own test.

Each block is executed in a fresh namespace, as a script would be; the blocks are
self-contained (they define their workflows, use `MemoryStorage` and call
`anyio.run` themselves) and check what they show with `assert`. Blocks fenced as
```python-skip are not run (fragments, or code that shows a mistake).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ["index.md", "primitives.md", "engine.md", "guarantee.md", "delivery.md", "pitfalls.md"]
DOCS = [ROOT / "docs" / "workflow" / name for name in GUIDES] + [
    ROOT / "docs" / "design" / "workflow-engine.md"
]

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


BLOCKS = [block for path in DOCS if path.exists() for block in _blocks(path)]


@pytest.fixture(autouse=True)
def _quiet_engine_logs() -> Iterator[None]:
    # Some examples inject storage faults on purpose; the engine logs them.
    logger = logging.getLogger("workflow")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def test_every_guide_exists_and_has_examples() -> None:
    for path in DOCS:
        assert path.exists(), path
    for name in GUIDES:
        assert _blocks(ROOT / "docs" / "workflow" / name), f"{name} has no runnable example"


def test_skip_fences_are_not_collected() -> None:
    sample = "```python\nx = 1\n```\n\n```python-skip\nraise SystemExit\n```\n"
    assert _BLOCK.findall(sample) == ["x = 1\n"]


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_block_runs(where: str, code: str) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_block_{where}"}
    exec(compile(code, where, "exec"), namespace)
