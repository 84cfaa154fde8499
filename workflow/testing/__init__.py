"""Test helpers for workflows: storage that fails on demand."""

from workflow.testing.faulty_storage import Fault, FaultyStorage

__all__ = ["Fault", "FaultyStorage"]
