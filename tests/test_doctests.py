"""Every docstring example in the three packages runs (doctest), so no example rots."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import effect
import tracker
import workflow

# Modules whose import starts something or needs optional extras are not collected.
_SKIP = {"workflow.__main__", "workflow.demo", "workflow.cli"}


def _modules() -> list[str]:
    names: list[str] = []
    for package in (effect, tracker, workflow):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if info.name not in _SKIP:
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
