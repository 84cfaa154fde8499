"""`@wf.workflow(name)`: a named function from input to an effect."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar, overload

import effect as fx
from workflow.context import WorkflowContext

__all__ = ["Workflow", "workflow"]

I = TypeVar("I")
A = TypeVar("A", covariant=True)
E = TypeVar("E", covariant=True)
A2 = TypeVar("A2")
E2 = TypeVar("E2")
I2 = TypeVar("I2")


class Workflow(Generic[I, A, E]):
    """A registered workflow: `name` and the function that builds its effect."""

    def __init__(self, name: str, build: Callable[[I], fx.Effect[A, E, WorkflowContext]]) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a workflow name must be a non-empty string, got {name!r}")
        self.name = name
        self._build = build

    def __call__(self, input: I) -> fx.Effect[A, E, WorkflowContext]:
        """The workflow's effect for `input` (runs nothing)."""
        effect = self._build(input)
        if not isinstance(effect, fx.Effect):
            raise TypeError(f"workflow {self.name!r} must return an Effect, got {effect!r}")
        return effect

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}>"


@overload
def workflow(
    name: str,
) -> Callable[
    [Callable[[I2], Generator[fx.Effect[Any, E2, WorkflowContext], Any, A2]]], Workflow[I2, A2, E2]
]: ...
@overload
def workflow(
    name: str, *, returns_effect: bool
) -> Callable[[Callable[[I2], fx.Effect[A2, E2, WorkflowContext]]], Workflow[I2, A2, E2]]: ...
def workflow(
    name: str, *, returns_effect: bool = False
) -> Callable[[Callable[[Any], Any]], Workflow[Any, Any, Any]]:
    """Declare a workflow named `name`.

    Decorate a generator function (the usual form, as with `fx.gen`), or, with
    `returns_effect=True`, a function returning an effect. Either takes the run's
    input (decoded from storage) and needs `wf.WorkflowContext`.

    Examples:
        >>> import effect as fx, workflow as wf
        >>> @wf.workflow("double")
        ... def double(n: int) -> fx.Gen[int, wf.StepFailedError, wf.WorkflowContext]:
        ...     x = yield from wf.step("compute", fx.succeed(n * 2))
        ...     return x
        >>> double.name
        'double'
    """

    def decorate(fn: Callable[[Any], Any]) -> Workflow[Any, Any, Any]:
        if returns_effect:
            return Workflow(name, fn)
        if not inspect.isgeneratorfunction(fn):
            raise TypeError(
                f"@workflow({name!r}) expects a generator function; for a function that "
                "returns an effect, use @workflow(name, returns_effect=True)"
            )
        return Workflow(name, fx.fn(fn))

    return decorate
