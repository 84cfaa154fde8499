"""Every ```python block of the resource, layer and testing docs runs, one test per
block.

The blocks of one page share a namespace, in order, like a doctest session: block n
sees what blocks 1..n-1 defined. Running a single block (`-k`) replays the blocks
before it first. Blocks fenced as ```python-skip are shown but not run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "effect"
PAGES = ["resources.md", "layers.md", "testing.md"]

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def blocks(page: str) -> list[tuple[int, str]]:
    """The runnable blocks of `page`: (line number of the fence, code)."""
    path = DOCS / page
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _FENCE.finditer(text)]


_BLOCKS = {page: blocks(page) for page in PAGES}
_CASES = [
    pytest.param(page, index, id=f"{page.removesuffix('.md')}-{index + 1}-line{line}")
    for page, found in _BLOCKS.items()
    for index, (line, _) in enumerate(found)
]

# page -> (index of the last block run, the namespace after it)
_sessions: dict[str, tuple[int, dict[str, Any]]] = {}


def _run(page: str, index: int, namespace: dict[str, Any]) -> None:
    line, code = _BLOCKS[page][index]
    # Pad with blank lines so tracebacks point at the line in the markdown file.
    source = "\n" * line + code
    exec(compile(source, str(DOCS / page), "exec"), namespace)


def _namespace_before(page: str, index: int) -> dict[str, Any]:
    """The namespace block `index` runs in: the session left by the block just
    before it, or a fresh one with the earlier blocks replayed."""
    done, namespace = _sessions.pop(page, (-1, {}))
    if index == 0 or done != index - 1:
        namespace = {"__name__": f"docs_{page.removesuffix('.md')}"}
        for earlier in range(index):
            _run(page, earlier, namespace)
    return namespace


def test_every_page_has_runnable_examples() -> None:
    for page in PAGES:
        assert (DOCS / page).exists(), f"docs/effect/{page} is missing"
        assert _BLOCKS[page], f"docs/effect/{page} has no ```python block"


@pytest.mark.parametrize(("page", "index"), _CASES)
def test_doc_block(page: str, index: int) -> None:
    namespace = _namespace_before(page, index)
    _run(page, index, namespace)
    _sessions[page] = (index, namespace)
