"""The order workflow of `python -m workflow demo` (and of the CLI docs).

    reserve-stock -> charge-card (flaky, retried) -> sleep cool-off -> ship -> notify

Every step is simulated with a short `fx.sleep`; nothing leaves the process. The
input is a JSON object; only `order_id` is required:

    {"order_id": "A-1042", "amount": 59.9, "email": "ada@example.com",
     "flaky": 2, "cool_off": 2, "ship_seconds": 1.0}

`flaky` is how many attempts of charge-card time out before one succeeds (default 2, so
with `Retry(max_attempts=4)` the third attempt succeeds; give 4 or more to see the run
fail). Attempt numbers are durable, so this holds across restarts of the process.
`cool_off` is the durable sleep in seconds, `ship_seconds` how long the carrier call
takes (long enough for the demo to kill the worker in the middle of it).

Run it with the CLI:

    python -m workflow run workflow.demo_workflows:order --input '{"order_id": "A-1"}'
"""

from __future__ import annotations

from typing import Any, Never

import effect as fx
import workflow as wf

__all__ = ["CHARGE_RETRY", "SHIP_RETRY", "PaymentGatewayTimeout", "order"]

CHARGE_RETRY = wf.Retry(max_attempts=4, backoff=0.25)
"""charge-card: up to 4 attempts, 0.25 s then 0.5 s then 1 s apart (in memory)."""

SHIP_RETRY = wf.Retry(max_attempts=3, backoff=0.25)
"""ship: an attempt cut short by a crash is tried again after recovery."""


class PaymentGatewayTimeout(Exception):
    """The simulated card processor did not answer in time."""


def reserve_stock(order_id: str) -> fx.Effect[str, Never, Never]:
    """Reserve the order's items; returns the reservation id."""
    return fx.sleep(0.1).as_(f"res-{order_id}")


def charge_card(
    order_id: str, amount: float, flaky: int
) -> fx.Effect[str, Exception, wf.WorkflowContext]:
    """Charge the card; attempts up to `flaky` time out.

    The attempt number comes from the run's context (`current_step`): a step's effect
    may read the context, it just may not use durable primitives."""

    @fx.gen
    def call() -> fx.Gen[str, Exception, wf.WorkflowContext]:
        ctx = yield from wf.WorkflowContext
        attempt = ctx.current_step[1] if ctx.current_step else 1
        yield from fx.sleep(0.05)
        if attempt <= flaky:
            return (yield from fx.fail(PaymentGatewayTimeout(f"no answer (attempt {attempt})")))
        return f"ch-{order_id}-{round(amount * 100)}"

    return call


def ship(order_id: str, seconds: float) -> fx.Effect[str, Never, Never]:
    """Hand the parcel to the carrier (takes `seconds`); returns the tracking number."""
    return fx.sleep(seconds).as_(f"TRACK-{order_id}")


def notify(email: str, tracking: str) -> fx.Effect[str, Never, Never]:
    """Email the customer; returns what was sent."""
    return fx.sleep(0.05).as_(f"mailed {email}: your parcel {tracking} is on its way")


@wf.workflow("order")
def order(
    input: dict[str, Any],
) -> fx.Gen[dict[str, Any], wf.StepFailedError, wf.WorkflowContext]:
    """Reserve, charge (retrying a flaky processor), cool off durably, ship, notify."""
    order_id = str(input["order_id"])
    reservation = yield from wf.step("reserve-stock", reserve_stock(order_id))
    charge = yield from wf.step(
        "charge-card",
        charge_card(order_id, float(input.get("amount", 59.9)), int(input.get("flaky", 2))),
        retry=CHARGE_RETRY,
    )
    yield from wf.sleep("cool-off", float(input.get("cool_off", 2)))
    tracking = yield from wf.step(
        "ship", ship(order_id, float(input.get("ship_seconds", 1.0))), retry=SHIP_RETRY
    )
    sent = yield from wf.step(
        "notify", notify(str(input.get("email", "customer@example.com")), tracking)
    )
    return {
        "order_id": order_id,
        "reservation": reservation,
        "charge": charge,
        "tracking": tracking,
        "notified": sent,
    }
