"""Events: validation, UUIDv7 ids, serialization, parsing and the published JSON schema."""

from __future__ import annotations

import enum
import itertools
import json
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker import events as ev
from tracker.events import (
    EVENT_TYPES,
    STEP_FAILURE_PHASES,
    ErrorInfo,
    Event,
    RetryScheduled,
    StepCompleted,
    StepFailed,
    StepStarted,
    WorkflowCompleted,
    WorkflowStarted,
    load_schema,
    parse_event,
    parse_event_json,
    uuid7,
)

# --- strategies -------------------------------------------------------------------------------

names = st.text(min_size=1, max_size=12)
counts = st.integers(min_value=0, max_value=2**40)
attempts = st.integers(min_value=1, max_value=1000)
millis = st.one_of(
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=10**9),
)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(ev.format_timestamp)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
error_infos = st.builds(
    ErrorInfo,
    type=names,
    message=st.text(max_size=30),
    phase=st.none() | st.sampled_from(sorted(STEP_FAILURE_PHASES)),
)

FIELD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "workflow_id": names,
    "workflow_name": names,
    "execution_id": st.none() | st.text(max_size=12),
    "seq": counts,
    "timestamp": timestamps,
    "input": json_values,
    "result": json_values,
    "reason": st.text(max_size=12),
    "resume_at": timestamps,
    "duration_ms": millis,
    "delay_ms": millis,
    "timeout_ms": millis,
    "error": error_infos,
    "step_name": names,
    "attempt": attempts,
    "attempts": attempts,
    "next_attempt": st.integers(min_value=2, max_value=2000),
    "crash_count": counts,
    "previous_owner": st.none() | st.text(max_size=12),
    "cached": st.booleans(),
    "will_retry": st.booleans(),
    "name": names,
}
# Optional fields (``X | None``) also get None.
NULLABLE = {
    ("workflow.paused", "resume_at"),
    ("workflow.failed", "step_name"),
    ("workflow.failed", "attempt"),
    ("workflow.cancelled", "reason"),
}


def event_strategy(cls: type[Event]) -> st.SearchStrategy[Event]:
    """Valid instances of one event class, with every field drawn (event_id generated)."""
    kwargs = {}
    for field in attrs.fields(cls):
        if field.name == "event_id":
            continue
        strategy = FIELD_STRATEGIES[field.name]
        if (cls.type, field.name) in NULLABLE:
            strategy = st.none() | strategy
        kwargs[field.name] = strategy
    if cls is RetryScheduled:
        return st.builds(
            lambda k, gap, **kw: cls(attempt=k, next_attempt=k + gap, **kw),
            attempts,
            st.integers(min_value=1, max_value=3),
            **{k: v for k, v in kwargs.items() if k not in ("attempt", "next_attempt")},
        )
    return st.builds(cls, **kwargs)


any_event = st.sampled_from(sorted(EVENT_TYPES)).flatmap(lambda t: event_strategy(EVENT_TYPES[t]))
wire_extras = st.fixed_dictionaries(
    {}, optional={"env": st.text(max_size=8), "service_key": st.text(max_size=8)}
)


def minimal(cls: type[Event], **overrides: Any) -> Event:
    """One valid event of ``cls`` with fixed, readable values."""
    values: dict[str, Any] = {
        "workflow_id": "wf-1",
        "workflow_name": "orders",
        "input": {"n": 1},
        "result": [1, 2],
        "reason": "sleep",
        "resume_at": "2026-01-02T03:04:05.000000Z",
        "duration_ms": 1.5,
        "delay_ms": 100,
        "timeout_ms": 50.0,
        "error": ErrorInfo("OSError", "boom", phase="user"),
        "step_name": "charge",
        "attempt": 1,
        "attempts": 3,
        "next_attempt": 2,
        "crash_count": 1,
        "will_retry": False,
        "name": "nap",
    }
    names = {f.name for f in attrs.fields(cls)}
    values = {k: v for k, v in values.items() if k in names}
    values.update(overrides)
    return cls(**values)


# --- construction and validation --------------------------------------------------------------


def test_registry_covers_every_class() -> None:
    assert len(EVENT_TYPES) == 18
    for type_, cls in EVENT_TYPES.items():
        assert cls.type == type_
        assert issubclass(cls, Event)
        event = minimal(cls)
        assert event.type == type_
        assert event.to_dict()["type"] == type_


def test_event_base_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        Event(workflow_id="w", workflow_name="n")


def test_events_are_frozen() -> None:
    event = StepStarted(workflow_id="w", workflow_name="n", step_name="s", attempt=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.attempt = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cls", "field", "value", "exc"),
    [
        (StepStarted, "attempt", 0, ValueError),
        (StepStarted, "attempt", -3, ValueError),
        (StepStarted, "attempt", True, TypeError),
        (StepStarted, "attempt", "1", TypeError),
        (StepStarted, "step_name", "", ValueError),
        (StepStarted, "step_name", 7, TypeError),
        (StepStarted, "workflow_id", "", ValueError),
        (StepStarted, "workflow_name", None, TypeError),
        (StepStarted, "execution_id", 5, TypeError),
        (StepStarted, "seq", -1, ValueError),
        (StepStarted, "seq", 1.0, TypeError),
        (StepStarted, "event_id", "not-a-uuid", ValueError),
        (StepStarted, "event_id", str(uuid.uuid4()), ValueError),
        (StepStarted, "timestamp", "yesterday", ValueError),
        (StepCompleted, "duration_ms", -0.5, ValueError),
        (StepCompleted, "duration_ms", float("nan"), ValueError),
        (StepCompleted, "duration_ms", float("inf"), ValueError),
        (StepCompleted, "duration_ms", "5", TypeError),
        (StepCompleted, "cached", 1, TypeError),
        (StepFailed, "will_retry", None, TypeError),
        (StepFailed, "error", {"type": "X", "message": "m"}, TypeError),
        (RetryScheduled, "resume_at", "2026-01-02 03:04:05", ValueError),
        (RetryScheduled, "next_attempt", 1, ValueError),
        (ev.WorkflowPaused, "resume_at", 12, TypeError),
        (ev.WorkflowRecovered, "crash_count", -1, ValueError),
        (ev.TimeoutSet, "timeout_ms", -1, ValueError),
        (ev.SleepStarted, "name", "", ValueError),
    ],
)
def test_validation_errors_name_the_field_and_value(
    cls: type[Event], field: str, value: object, exc: type[Exception]
) -> None:
    with pytest.raises(exc) as info:
        minimal(cls, **{field: value})
    message = str(info.value)
    assert f"'{field}'" in message
    assert cls.type in message
    assert ev._repr.repr(value) in message  # the (length-limited) repr of the bad value


class _Str(str):
    pass


class _Level(enum.IntEnum):
    ZERO = 0
    TWO = 2


class _Float(float):
    pass


def test_validators_accept_valid_values_of_any_subtype() -> None:
    # The validators shortcut exact str/int/float values; subclasses take the full check.
    event = minimal(
        StepCompleted,
        workflow_id=_Str("wf-1"),
        execution_id=_Str("ex"),
        timestamp=_Str("2026-01-02T03:04:05.000000Z"),
        event_id=_Str("01890a5d-ac96-774b-bcce-b302099a8057"),
        seq=_Level.TWO,
        attempt=_Level.TWO,
        duration_ms=_Float(2.5),
    )
    assert [event.to_dict()[k] for k in ("seq", "attempt", "duration_ms")] == [2, 2, 2.5]
    assert minimal(StepCompleted, duration_ms=3).to_dict()["duration_ms"] == 3
    assert minimal(StepCompleted, duration_ms=-0.0).to_dict()["duration_ms"] == 0
    with pytest.raises(ValueError, match="'workflow_id'"):
        minimal(StepCompleted, workflow_id=_Str(""))
    with pytest.raises(ValueError, match="'attempt'"):
        minimal(StepCompleted, attempt=_Level.ZERO)
    with pytest.raises(ValueError, match="'duration_ms'"):
        minimal(StepCompleted, duration_ms=_Float("-inf"))
    with pytest.raises(ValueError, match="'event_id'"):
        minimal(StepCompleted, event_id=_Str("not-a-uuid"))


def test_next_attempt_must_follow_attempt() -> None:
    with pytest.raises(ValueError, match="'next_attempt' must be > attempt"):
        minimal(RetryScheduled, attempt=3, next_attempt=3)


def test_error_info_validation_and_from_exception() -> None:
    with pytest.raises(ValueError, match=r"ErrorInfo field 'phase'.*'bogus'"):
        ErrorInfo("X", "m", phase="bogus")
    with pytest.raises(TypeError, match="ErrorInfo field 'message'"):
        ErrorInfo("X", None)  # type: ignore[arg-type]
    assert ErrorInfo.from_exception(KeyError("k")) == ErrorInfo("KeyError", "'k'")

    class Boom(Exception):
        pass

    info = ErrorInfo.from_exception(Boom("bad"), phase="timeout")
    assert info.type == f"{__name__}.{Boom.__qualname__}"
    assert (info.message, info.phase) == ("bad", "timeout")


def test_json_fields_must_be_json_serializable() -> None:
    with pytest.raises(TypeError, match="'input'"):
        minimal(WorkflowStarted, input={1, 2})
    with pytest.raises(TypeError, match="'result'"):
        minimal(WorkflowCompleted, result=object())
    with pytest.raises(TypeError, match="'result'"):
        minimal(WorkflowCompleted, result=[float("nan")])


def test_json_fields_are_snapshotted() -> None:
    payload: dict[str, Any] = {"items": (1, 2)}
    event = minimal(WorkflowStarted, input=payload)
    payload["items"] = "changed"
    assert event.input == {"items": [1, 2]}  # type: ignore[attr-defined]
    assert parse_event(event.to_dict()) == event


def test_timestamp_is_rfc3339_utc_with_microseconds() -> None:
    before = datetime.now(UTC)
    event = minimal(StepStarted)
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event.timestamp)
    parsed = datetime.fromisoformat(event.timestamp.replace("Z", "+00:00"))
    assert before <= parsed <= after
    with pytest.raises(ValueError, match="aware"):
        ev.format_timestamp(datetime(2026, 1, 1))


def test_utc_now_matches_the_clock_and_the_format() -> None:
    before = datetime.now(UTC)
    stamp = ev.utc_now()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert before <= datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after
    assert after - before < timedelta(seconds=1)


@pytest.mark.parametrize(
    "clock_ns",
    [
        [0, 999, 1_000, 999_999_999, 1_000_000_000],
        # Within one second, then the next one, then back: the cached date must follow.
        [1_767_322_245_000_000_000, 1_767_322_245_123_456_789, 1_767_322_246_000_000_999],
        [1_767_322_246_999_999_999, 1_767_322_245_500_000_000, 253_402_300_799_999_999_999],
    ],
)
def test_utc_now_formats_like_format_timestamp(
    monkeypatch: pytest.MonkeyPatch, clock_ns: list[int]
) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for ns in clock_ns:
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        # datetime.now(UTC) truncates the clock to whole microseconds.
        assert ev.utc_now() == ev.format_timestamp(epoch + timedelta(microseconds=ns // 1000))


def test_format_timestamp_converts_any_aware_datetime() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    assert ev.format_timestamp(datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=india)) == (
        "2026-01-01T21:34:05.000007Z"
    )
    west = timezone(-timedelta(hours=2))
    assert ev.format_timestamp(datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=west)) == (
        "1000-01-01T01:59:59.999999Z"
    )
    assert ev.format_timestamp(datetime(5, 1, 1, tzinfo=UTC)) == "0005-01-01T00:00:00.000000Z"


# --- UUIDv7 -----------------------------------------------------------------------------------


def test_uuid7_ids_sort_in_creation_order() -> None:
    start_ms = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(10_000)]
    end_ms = time.time_ns() // 1_000_000
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for value in [*ids[::97], ids[-1]]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        # The counter may borrow a few ms from the future when one ms overflows it.
        assert start_ms <= parsed.int >> 80 <= end_ms + 10


def test_uuid7_counter_overflow_and_clock_going_backwards() -> None:
    now = [1_000]
    gen = ev._Uuid7(clock_ms=lambda: now[0])
    ids = [gen() for _ in range(5_000)]  # more than the 12-bit counter holds in one ms
    now[0] = 500  # the clock jumps back
    ids += [gen() for _ in range(10)]
    now[0] = 2_000
    ids.append(gen())
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert uuid.UUID(ids[0]).int >> 80 == 1_000
    assert uuid.UUID(ids[-1]).int >> 80 == 2_000


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            bytes(range(256)),
            [
                "01234567-89ab-7001-8203-040506070809",
                "01234567-89ab-7002-8a0b-0c0d0e0f1011",
                "01234567-89ac-7013-9415-161718191a1b",
            ],
        ),
        (
            bytes(range(255, -1, -1)),
            [
                "01234567-89ab-71fe-bdfc-fbfaf9f8f7f6",
                "01234567-89ab-71ff-b5f4-f3f2f1f0efee",
                "01234567-89ac-71ec-abea-e9e8e7e6e5e4",
            ],
        ),
    ],
)
def test_uuid7_layout_of_clock_counter_and_random_bytes(block: bytes, expected: list[str]) -> None:
    # A new millisecond seeds the counter from 2 random bytes (low 9 bits); every id then takes
    # 8 more, of which rand_b keeps the low 62 bits behind the variant bits 0b10.
    now = [0x0123_4567_89AB]
    gen = ev._Uuid7(clock_ms=lambda: now[0], random_bytes=lambda n: block * (n // len(block)))
    ids = [gen(), gen()]
    now[0] += 1
    ids.append(gen())
    assert ids == expected


def test_uuid7_random_blocks_are_used_once_each() -> None:
    blocks: list[bytes] = []

    def random_bytes(n: int) -> bytes:
        blocks.append(os.urandom(n))
        return blocks[-1]

    now = [1_000]

    def clock() -> int:
        now[0] += 1  # a new millisecond per id: the most bytes per id
        return now[0] // 2

    gen = ev._Uuid7(clock_ms=clock, random_bytes=random_bytes)
    ids = [gen() for _ in range(3 * ev._RANDOM_BLOCK // 8)]
    assert len(blocks) >= 3 and {len(b) for b in blocks} == {ev._RANDOM_BLOCK}
    assert all(a < b for a, b in itertools.pairwise(ids))
    # The last 12 hex digits are 6 random bytes verbatim: taken from the blocks, never twice.
    tails = [i[-12:] for i in ids]
    assert len(set(tails)) == len(tails)
    pool = " ".join(b.hex() for b in blocks)
    assert all(t in pool for t in tails)
    # The module's generator, across many refills of its own blocks.
    ids = [uuid7() for _ in range(4 * ev._RANDOM_BLOCK)]
    assert all(a < b for a, b in itertools.pairwise(ids))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
@pytest.mark.filterwarnings("ignore:.*fork:DeprecationWarning")
def test_uuid7_forked_child_does_not_reuse_the_parents_random_bytes() -> None:
    gen = ev._uuid7_generator
    uuid7()
    while len(gen._pool) - gen._pos < 1_000:  # leave the child plenty of the block to reuse
        uuid7()
    unused = gen._pool[gen._pos :].hex()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        try:
            os.write(write_fd, " ".join(uuid7() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    parent_ids = [uuid7() for _ in range(50)]
    with os.fdopen(read_fd, "rb") as pipe:
        child_ids = pipe.read().decode().split()
    os.waitpid(pid, 0)
    assert len(child_ids) == 50
    assert not set(child_ids) & set(parent_ids)
    assert not [i for i in child_ids if i[-12:] in unused]


def test_uuid7_is_unique_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        out.extend(uuid7() for _ in range(2_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = [i for out in results for i in out]
    assert len(set(merged)) == len(merged)
    assert all(out == sorted(out) for out in results)


# --- serialization ----------------------------------------------------------------------------


def test_json_key_order_snapshot() -> None:
    event = StepFailed(
        event_id="01890a5d-ac96-774b-bcce-b302099a8057",
        timestamp="2026-01-02T03:04:05.123456Z",
        workflow_id="wf-1",
        workflow_name="orders",
        execution_id="ex-9",
        seq=4,
        step_name="charge",
        attempt=2,
        will_retry=True,
        error=ErrorInfo("TimeoutError", "too slow", phase="timeout"),
    )
    assert event.to_json(env="prod", service_key="svc") == (
        '{"event_id":"01890a5d-ac96-774b-bcce-b302099a8057","type":"step.failed",'
        '"timestamp":"2026-01-02T03:04:05.123456Z","workflow_id":"wf-1",'
        '"workflow_name":"orders","execution_id":"ex-9","seq":4,"env":"prod",'
        '"service_key":"svc","step_name":"charge","attempt":2,"will_retry":true,'
        '"error":{"type":"TimeoutError","message":"too slow","phase":"timeout"}}'
    )
    assert list(event.to_dict()) == [
        *ev.ENVELOPE_FIELDS,
        "step_name",
        "attempt",
        "will_retry",
        "error",
    ]


def test_env_and_service_key_are_wire_only() -> None:
    event = minimal(StepStarted)
    assert "env" not in event.to_dict() and "service_key" not in event.to_dict()
    assert event.to_dict(env="dev")["env"] == "dev"
    assert "env" not in event.to_dict(service_key="k")
    with pytest.raises(TypeError, match="env"):
        event.to_dict(env=3)  # type: ignore[arg-type]
    assert parse_event(event.to_dict(env="dev", service_key="k")) == event


def test_to_json_is_ascii_and_compact() -> None:
    event = minimal(WorkflowStarted, input={"name": "Zoë \ud800"})
    text = event.to_json()
    assert text.isascii() and ", " not in text and ": " not in text
    assert parse_event_json(text.encode()) == event


@settings(max_examples=300, deadline=None)
@given(event=any_event, extras=wire_extras)
def test_round_trip_is_exact(event: Event, extras: dict[str, str]) -> None:
    assert parse_event(event.to_dict()) == event
    assert parse_event_json(event.to_json(**extras)) == event
    keys = list(event.to_dict(**extras))
    typed = [f.name for f in attrs.fields(type(event)) if f.name not in ev.ENVELOPE_FIELDS]
    wire_only = [k for k in ("env", "service_key") if k in extras]
    assert keys == [*ev.ENVELOPE_FIELDS, *wire_only, *typed]


def test_parse_errors_name_the_type_and_field() -> None:
    good = minimal(StepFailed).to_dict()
    cases: list[tuple[object, str]] = [
        ({**good, "type": "step.exploded"}, "unknown event type 'step.exploded'"),
        ({k: v for k, v in good.items() if k != "type"}, "unknown event type None"),
        (
            {k: v for k, v in good.items() if k != "attempt"},
            "step.failed is missing field 'attempt'",
        ),
        ({k: v for k, v in good.items() if k != "seq"}, "step.failed is missing field 'seq'"),
        ({**good, "colour": "red"}, "step.failed has unknown field 'colour'"),
        ({**good, "attempt": 0}, "step.failed field 'attempt'"),
        ({**good, "will_retry": "yes"}, "step.failed field 'will_retry'"),
        ({**good, "env": 1}, "step.failed field 'env'"),
        ({**good, "error": "boom"}, "step.failed field 'error' must be an object"),
        ({**good, "error": {"type": "X", "message": "m"}}, "missing field 'phase'"),
        ({**good, "error": {"type": "X", "message": "m", "phase": "p"}}, "'phase'"),
        ([1, 2], "must be a JSON object"),
    ]
    for data, expected in cases:
        with pytest.raises(ValueError) as info:
            parse_event(data)  # type: ignore[arg-type]
        assert expected in str(info.value)
    with pytest.raises(ValueError, match="JSON object"):
        parse_event_json("[]")
    with pytest.raises(ValueError):
        parse_event_json("{not json")


# --- schema -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_branches_match_event_classes() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    branches = {b["properties"]["type"]["const"]: b for b in schema["oneOf"]}
    assert set(branches) == set(EVENT_TYPES)
    for type_, cls in EVENT_TYPES.items():
        branch = branches[type_]
        fields = [*ev.ENVELOPE_FIELDS] + [
            f.name for f in attrs.fields(cls) if f.name not in ev.ENVELOPE_FIELDS
        ]
        assert branch["additionalProperties"] is False
        assert list(branch["properties"]) == [*fields[:7], "env", "service_key", *fields[7:]]
        assert branch["required"] == fields


# jsonschema tries every oneOf branch, ~10 ms per event here; 150 examples cover each type ~8x.
@settings(max_examples=150, deadline=None)
@given(event=any_event, extras=wire_extras)
def test_generated_events_validate_against_schema(
    validator: jsonschema.Draft202012Validator, event: Event, extras: dict[str, str]
) -> None:
    validator.validate(json.loads(event.to_json(**extras)))


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_every_type_validates_and_schema_rejects_mutations(
    validator: jsonschema.Draft202012Validator, cls: type[Event]
) -> None:
    wire = minimal(cls).to_dict(env="dev", service_key="svc")
    validator.validate(wire)
    bad_variants = [
        {**wire, "extra": 1},
        {k: v for k, v in wire.items() if k != "workflow_id"},
        {**wire, "seq": -1},
        {**wire, "event_id": str(uuid.uuid4())},
        {**wire, "type": "nope"},
        {**wire, "timestamp": "now"},
    ]
    for bad in bad_variants:
        assert not validator.is_valid(bad), bad
