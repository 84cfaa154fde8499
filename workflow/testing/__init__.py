"""Test helpers for workflows: storage that fails on demand, and an engine on virtual
time (`test_engine`)."""

from workflow.testing.engine import TestEngine, test_engine
from workflow.testing.faulty_storage import Fault, FaultyStorage

__all__ = ["Fault", "FaultyStorage", "TestEngine", "test_engine"]
