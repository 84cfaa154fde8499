"""Every ```python block in the docs (and the README) runs, so no example rots.

One test per page: its blocks run in order in one namespace, like a doctest
session, so a block may use what an earlier block of the same page defined.
Blocks fenced as ```python-skip are shown but not run (fragments, or code that
shows a mistake). A failure names the page and the line of the block.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"])

# An opening fence at the start of a line, exactly "```python" (not "```python-skip").
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def blocks(text: str) -> list[tuple[int, str]]:
    """The runnable blocks of a page: (line of the opening fence, code)."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _FENCE.finditer(text)]


def test_skip_fences_are_not_collected() -> None:
    sample = "```python\nx = 1\n```\n\n```python-skip\nraise SystemExit\n```\n"
    assert blocks(sample) == [(1, "x = 1\n")]


@pytest.fixture(autouse=True)
def _quiet_engine_logs() -> Iterator[None]:
    # Examples that inject storage faults make the engine log warnings on purpose.
    logger = logging.getLogger("workflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if blocks(p.read_text(encoding="utf-8"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_page_examples_run(page: Path) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    for line, code in blocks(page.read_text(encoding="utf-8")):
        # Pad with blank lines so a traceback points at the line in the markdown file.
        source = "\n" * line + code
        try:
            exec(compile(source, str(page), "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the block at {page.name}:{line} failed: {exc!r}") from exc
