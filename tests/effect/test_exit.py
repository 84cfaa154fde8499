"""Exit and Cause: constructors, queries, squash, pretty, and the algebraic laws of
semantic cause equality (rules R1-R13 of the semantics reference)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import effect as fx
from effect import Cause, Die, Empty, Fail, Failure, Interrupt, Parallel, Sequential, Success

# --------------------------------------------------------------------------------------
# A strategy for random causes.
#
# `Die` leaves compare their defects by value equality, and two distinct Python
# exception objects are never equal, so defects are drawn from a fixed pool of
# objects: the same drawn index is the same object, hence equal.

DEFECTS: list[BaseException] = [ValueError("d0"), RuntimeError("d1"), KeyError("d2")]

leaves: st.SearchStrategy[Cause[Any]] = st.one_of(
    st.just(Empty()),
    st.integers(min_value=0, max_value=3).map(lambda e: Fail(e)),
    st.sampled_from(["a", "b"]).map(lambda e: Fail(e)),
    st.sampled_from(DEFECTS).map(lambda d: Die(d)),
    st.integers(min_value=1, max_value=3).map(lambda i: Interrupt(i)),
)


def _extend(children: st.SearchStrategy[Cause[Any]]) -> st.SearchStrategy[Cause[Any]]:
    return st.one_of(
        st.tuples(children, children).map(lambda lr: Sequential(lr[0], lr[1])),
        st.tuples(children, children).map(lambda lr: Parallel(lr[0], lr[1])),
    )


causes: st.SearchStrategy[Cause[Any]] = st.recursive(leaves, _extend, max_leaves=12)


# --------------------------------------------------------------------------------------
# Exit


def test_exit_success_and_failure_shapes() -> None:
    ok: fx.Exit[int, str] = Success(1)
    ko: fx.Exit[int, str] = Failure(Fail("boom"))
    assert ok.is_success() and not ok.is_failure()
    assert ko.is_failure() and not ko.is_success()
    assert isinstance(ko, Failure)
    # R1: a Failure always carries a Cause, never a bare error
    assert isinstance(ko.cause, Cause)
    assert ko.cause.failures() == ["boom"]


def test_exit_equality() -> None:
    assert Success(1) == Success(1)
    assert Success(1) != Success(2)
    assert Failure(Fail("x")) == Failure(Fail("x"))
    assert Failure(Fail("x")) != Failure(Fail("y"))
    assert Success(1) != Failure(Fail(1))  # type: ignore[comparison-overlap]


def test_exit_is_matchable() -> None:
    def describe(ex: fx.Exit[int, str]) -> str:
        match ex:
            case Success(value):
                return f"ok {value}"
            case Failure(cause):
                return f"failed {cause.failures()}"
        raise AssertionError("unreachable")

    assert describe(Success(3)) == "ok 3"
    assert describe(Failure(Fail("e"))) == "failed ['e']"


def test_exit_is_interrupted_means_contains_an_interrupt() -> None:
    # R11: "contains an Interrupt anywhere", not "interrupt only"
    assert Failure(Interrupt(1)).is_interrupted()
    assert Failure(Sequential(Fail("x"), Interrupt(1))).is_interrupted()
    assert Failure(Parallel(Die(ValueError()), Interrupt(2))).is_interrupted()
    assert not Failure(Fail("x")).is_interrupted()
    assert not Failure(Empty()).is_interrupted()
    assert not Success(1).is_interrupted()


def test_run_sync_exit_of_fail_is_failure_of_fail() -> None:
    # R84: run_sync_exit(fail(1)) == Exit.fail(1)
    assert fx.run_sync_exit(fx.fail(1)) == Failure(Fail(1))
    assert fx.run_sync_exit(fx.succeed(1)) == Success(1)


# --------------------------------------------------------------------------------------
# Cause constructors (R2, R3)


def test_cause_cases_hold_their_payloads() -> None:
    d = ValueError("d")
    assert Fail("e").error == "e"
    assert Die(d).defect is d
    assert Interrupt(7).fiber_id == 7
    s = Sequential(Fail(1), Fail(2))
    assert s.left == Fail(1) and s.right == Fail(2)
    p = Parallel(Fail(1), Fail(2))
    assert p.left == Fail(1) and p.right == Fail(2)
    for c in (Empty(), Fail(1), Die(d), Interrupt(1), s, p):
        assert isinstance(c, Cause)


def test_constructors_do_not_simplify() -> None:
    # R3: sequential(empty, x) really is a Sequential node
    x = Fail("x")
    s = Sequential(Empty(), x)
    assert isinstance(s, Sequential)
    assert isinstance(s.left, Empty) and s.right is x
    p = Parallel(x, Empty())
    assert isinstance(p, Parallel)
    assert p.left is x and isinstance(p.right, Empty)
    # ... but they are semantically equal to x (R4)
    assert s == x and p == x


def test_cause_is_matchable() -> None:
    def kind(c: Cause[Any]) -> str:
        match c:
            case Empty():
                return "empty"
            case Fail(error):
                return f"fail {error}"
            case Die(defect):
                return f"die {defect}"
            case Interrupt(fiber_id):
                return f"interrupt {fiber_id}"
            case Sequential(left, right):
                return f"seq({kind(left)}, {kind(right)})"
            case Parallel(left, right):
                return f"par({kind(left)}, {kind(right)})"
        raise AssertionError("unreachable")

    c = Sequential(Fail("a"), Parallel(Die(ValueError("b")), Interrupt(3)))
    assert kind(c) == "seq(fail a, par(die b, interrupt 3))"
    assert kind(Empty()) == "empty"


# --------------------------------------------------------------------------------------
# Queries (R5-R7)


def test_failures_and_defects_left_to_right_under_both_combinators() -> None:
    d1, d2 = ValueError("1"), ValueError("2")
    c = Sequential(
        Parallel(Fail("a"), Die(d1)),
        Sequential(Interrupt(4), Parallel(Fail("b"), Sequential(Die(d2), Fail("c")))),
    )
    assert c.failures() == ["a", "b", "c"]
    assert c.defects() == [d1, d2]


def test_interruptors_is_the_set_of_ids() -> None:
    c = Sequential(Interrupt(1), Parallel(Interrupt(2), Sequential(Fail("x"), Interrupt(1))))
    assert c.interruptors() == {1, 2}
    assert Empty().interruptors() == set()
    assert Fail("x").interruptors() == set()


def test_size_counts_fail_die_interrupt_leaves() -> None:
    assert Empty().size() == 0
    assert Fail(1).size() == 1
    assert Die(ValueError()).size() == 1
    assert Interrupt(1).size() == 1
    c = Sequential(Empty(), Parallel(Fail(1), Sequential(Die(ValueError()), Interrupt(2))))
    assert c.size() == 3
    assert Sequential(Empty(), Parallel(Empty(), Empty())).size() == 0


def test_is_failure_is_die_is_interrupted_mean_contains() -> None:
    c = Sequential(Fail("x"), Parallel(Empty(), Interrupt(1)))
    assert c.is_failure()
    assert not c.is_die()
    assert c.is_interrupted()
    d = Parallel(Die(ValueError()), Empty())
    assert d.is_die() and not d.is_failure() and not d.is_interrupted()
    assert not Empty().is_failure()
    assert not Empty().is_die()
    assert not Empty().is_interrupted()


def test_is_interrupted_only() -> None:
    # R7: no Fail and no Die; Empty counts as interrupted-only
    assert Interrupt(1).is_interrupted_only()
    assert Empty().is_interrupted_only()
    assert Sequential(Empty(), Interrupt(1)).is_interrupted_only()
    assert Parallel(Interrupt(1), Sequential(Interrupt(2), Empty())).is_interrupted_only()
    assert not Sequential(Interrupt(1), Fail("x")).is_interrupted_only()
    assert not Parallel(Interrupt(1), Die(ValueError())).is_interrupted_only()
    assert not Fail("x").is_interrupted_only()


def test_is_empty() -> None:
    assert Empty().is_empty()
    assert Sequential(Empty(), Parallel(Empty(), Empty())).is_empty()
    assert not Interrupt(1).is_empty()
    assert not Sequential(Empty(), Fail(1)).is_empty()


# --------------------------------------------------------------------------------------
# squash (R8)


def test_squash_prefers_the_first_failure() -> None:
    d = ValueError("d")
    assert Sequential(Die(d), Fail("f")).squash() == "f"
    assert Parallel(Fail("f1"), Fail("f2")).squash() == "f1"
    assert Sequential(Interrupt(1), Sequential(Die(d), Fail("g"))).squash() == "g"


def test_squash_falls_back_to_the_first_defect() -> None:
    d1, d2 = ValueError("1"), KeyError("2")
    assert Sequential(Interrupt(1), Parallel(Die(d1), Die(d2))).squash() is d1


def test_squash_of_interrupt_only_is_interrupted_exception() -> None:
    sq = Sequential(Interrupt(5), Empty()).squash()
    assert isinstance(sq, fx.InterruptedException)
    assert str(sq) == "Interrupted by fibers: #5"
    many = Parallel(Interrupt(1), Interrupt(2)).squash()
    assert isinstance(many, fx.InterruptedException)
    assert str(many).startswith("Interrupted by fibers: ")
    assert "#1" in str(many) and "#2" in str(many)


def test_squash_of_empty() -> None:
    sq = Empty().squash()
    assert isinstance(sq, fx.InterruptedException)
    assert str(sq) == "Interrupted by fibers: "


# --------------------------------------------------------------------------------------
# pretty (R9)

INTERRUPTED_ONLY_TEXT = "All fibers interrupted without errors."


@pytest.mark.parametrize(
    "cause",
    [Empty(), Interrupt(1), Sequential(Interrupt(1), Parallel(Empty(), Interrupt(2)))],
)
def test_pretty_of_interrupted_only_is_exact(cause: Cause[Any]) -> None:
    assert cause.pretty() == INTERRUPTED_ONLY_TEXT
    assert str(cause) == INTERRUPTED_ONLY_TEXT


def test_pretty_of_a_string_failure() -> None:
    assert Fail("a").pretty() == "Error: a"


def test_pretty_of_an_exception_failure_uses_its_class_name() -> None:
    assert Fail(ValueError("bad value")).pretty() == "ValueError: bad value"


def test_pretty_of_a_non_string_value() -> None:
    assert Fail(42).pretty() == "Error: 42"


def test_pretty_uses_a_user_defined_str() -> None:
    # R9: "else a user-defined toString" -- Python's analogue is `__str__`.
    class Oops:
        def __str__(self) -> str:
            return "custom oops"

    assert Fail(Oops()).pretty() == "Error: custom oops"


def test_pretty_entries_left_to_right_joined_by_newline() -> None:
    # R9 example: pretty(Sequential(Fail "a", Fail "b")) == "Error: a\nError: b"
    assert Sequential(Fail("a"), Fail("b")).pretty() == "Error: a\nError: b"
    assert Parallel(Fail("a"), Fail(ValueError("b"))).pretty() == "Error: a\nValueError: b"


def test_pretty_omits_interrupts_beside_errors() -> None:
    assert Sequential(Interrupt(1), Parallel(Fail("a"), Interrupt(2))).pretty() == "Error: a"


def test_pretty_of_a_defect_starts_with_name_and_message() -> None:
    # An exception that was never raised has no traceback: the entry is just the line.
    text = Sequential(Fail("a"), Die(RuntimeError("b"))).pretty()
    lines = text.split("\n")
    assert lines[0] == "Error: a"
    assert lines[1] == "RuntimeError: b"


def _raise_deep() -> None:
    raise ZeroDivisionError("deep trouble")


def test_pretty_of_a_raised_defect_includes_its_traceback() -> None:
    try:
        _raise_deep()
    except ZeroDivisionError as exc:
        caught = exc
    text = Die(caught).pretty()
    assert text.split("\n")[0] == "ZeroDivisionError: deep trouble"
    assert "Traceback" in text
    assert "_raise_deep" in text


def test_pretty_of_a_defect_thrown_by_user_code_in_an_effect() -> None:
    def boom() -> int:
        raise ZeroDivisionError("in sync")

    ex = fx.run_sync_exit(fx.sync(boom))
    assert isinstance(ex, Failure)
    text = ex.cause.pretty()
    assert text.split("\n")[0] == "ZeroDivisionError: in sync"
    assert "boom" in text  # the traceback names the user function


def test_str_of_a_cause_is_pretty() -> None:
    c = Sequential(Fail("a"), Die(RuntimeError("b")))
    assert str(c) == c.pretty()


# --------------------------------------------------------------------------------------
# strip_failures (R10)


def test_strip_failures_turns_fail_into_empty_and_keeps_the_rest() -> None:
    d = ValueError("d")
    c = Sequential(Fail("a"), Parallel(Die(d), Sequential(Fail("b"), Interrupt(3))))
    stripped = c.strip_failures()
    assert stripped.failures() == []
    assert stripped.defects() == [d]
    assert stripped.interruptors() == {3}
    assert stripped == Parallel(Die(d), Interrupt(3))
    assert Fail("x").strip_failures().is_empty()


@given(causes)
def test_strip_failures_law(c: Cause[Any]) -> None:
    s = c.strip_failures()
    assert s.failures() == []
    assert s.defects() == c.defects()
    assert s.interruptors() == c.interruptors()
    assert s.size() == c.size() - len(c.failures())


# --------------------------------------------------------------------------------------
# Semantic equality (R4)


def test_sequential_is_not_commutative() -> None:
    assert Sequential(Fail(1), Fail(2)) != Sequential(Fail(2), Fail(1))


def test_parallel_is_commutative_example() -> None:
    assert Parallel(Fail(1), Fail(2)) == Parallel(Fail(2), Fail(1))


def test_die_compares_defects_by_value() -> None:
    d = ValueError("x")
    assert Die(d) == Die(d)
    # Two distinct exception objects are unequal, even with the same message.
    assert Die(ValueError("x")) != Die(ValueError("x"))


def test_fail_compares_errors_by_value() -> None:
    assert Fail(("a", 1)) == Fail(("a", 1))
    assert Fail("a") != Fail("b")
    assert Fail("a") != Die(ValueError("a"))
    assert Interrupt(1) != Interrupt(2)
    assert Interrupt(1) == Interrupt(1)


def test_cause_is_not_equal_to_non_causes() -> None:
    assert Fail(1) != 1
    assert Empty() != None  # noqa: E711


def test_cause_hash_usable_in_sets() -> None:
    s = {Sequential(Empty(), Fail(1)), Fail(1), Parallel(Fail(1), Empty())}
    assert len(s) == 1


@given(causes, causes, causes)
def test_sequential_is_associative(a: Cause[Any], b: Cause[Any], c: Cause[Any]) -> None:
    assert Sequential(Sequential(a, b), c) == Sequential(a, Sequential(b, c))


@given(causes, causes, causes)
def test_parallel_is_associative(a: Cause[Any], b: Cause[Any], c: Cause[Any]) -> None:
    assert Parallel(Parallel(a, b), c) == Parallel(a, Parallel(b, c))


@given(causes, causes)
def test_parallel_is_commutative(a: Cause[Any], b: Cause[Any]) -> None:
    assert Parallel(a, b) == Parallel(b, a)


@given(causes)
def test_empty_is_identity_for_sequential(a: Cause[Any]) -> None:
    assert Sequential(Empty(), a) == a
    assert Sequential(a, Empty()) == a
    assert a == Sequential(Empty(), a)


@given(causes)
def test_empty_is_identity_for_parallel(a: Cause[Any]) -> None:
    assert Parallel(Empty(), a) == a
    assert Parallel(a, Empty()) == a
    assert a == Parallel(a, Empty())


@given(causes)
def test_equality_is_reflexive(a: Cause[Any]) -> None:
    assert a == a
    assert not (a != a)  # noqa: SIM202


@given(causes, causes)
def test_equality_is_symmetric(a: Cause[Any], b: Cause[Any]) -> None:
    assert (a == b) == (b == a)


@settings(max_examples=300)
@given(causes, causes)
def test_hash_is_consistent_with_equality(a: Cause[Any], b: Cause[Any]) -> None:
    if a == b:
        assert hash(a) == hash(b)


@given(causes, causes, causes)
def test_laws_produce_equal_hashes(a: Cause[Any], b: Cause[Any], c: Cause[Any]) -> None:
    # Equal by the laws, so the hashes must agree too.
    assert hash(Sequential(Sequential(a, b), c)) == hash(Sequential(a, Sequential(b, c)))
    assert hash(Parallel(a, b)) == hash(Parallel(b, a))
    assert hash(Parallel(Empty(), a)) == hash(a)
    assert hash(Sequential(a, Empty())) == hash(a)


@given(causes)
def test_queries_are_invariant_under_the_identity_law(a: Cause[Any]) -> None:
    wrapped = Sequential(Empty(), Parallel(a, Empty()))
    assert wrapped.failures() == a.failures()
    assert wrapped.defects() == a.defects()
    assert wrapped.interruptors() == a.interruptors()
    assert wrapped.size() == a.size()
    assert wrapped.is_interrupted_only() == a.is_interrupted_only()
