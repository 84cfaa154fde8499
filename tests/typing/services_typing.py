"""Typing of services, layers and scopes: what providing removes from `R`
(checked by mypy --strict and pyright strict)."""

from __future__ import annotations

from typing import Never, assert_type

import effect as fx


class ErrA:
    """A typed error."""


class ErrL:
    """A layer build error."""


class Db(fx.Tag["Db", str]):
    """A service whose implementation is a `str`."""


class Log(fx.Tag["Log", list[str]]):
    """A service whose implementation is a list of lines."""


def needs_db() -> fx.Effect[int, ErrA, Db]:
    return fx.service(Db).map(len).zip_left(fx.fail(ErrA()))


def needs_both() -> fx.Effect[int, ErrA, Db | Log]:
    return needs_db().zip_left(fx.service(Log))


# provide_service on an effect that needs exactly that tag: nothing is left.
assert_type(needs_db().provide_service(Db, "url"), fx.Effect[int, ErrA, Never])

# fx.provide_service + pipe removes one tag of two, then the other.
one_left = needs_both().pipe(fx.provide_service(Db, "url"))
assert_type(one_left, fx.Effect[int, ErrA, Log])
none_left = one_left.pipe(fx.provide_service(Log, []))
assert_type(none_left, fx.Effect[int, ErrA, Never])

# A Provider applied directly.
provider = fx.provide_service(Log, ["a"])
assert_type(provider(needs_both()), fx.Effect[int, ErrA, Db])

# provide(layer) with a layer covering all of R.
db_layer = fx.Layer.succeed(Db, "url")
log_layer = fx.Layer.sync(Log, list)
both = fx.Layer.merge(db_layer, log_layer)
assert_type(both, fx.Layer[Db | Log, Never, Never])
assert_type(needs_both().provide(both), fx.Effect[int, ErrA, Never])
assert_type(needs_db().provide(db_layer), fx.Effect[int, ErrA, Never])

# A layer that provides more than needed is fine (Layer is contravariant in ROut).
assert_type(needs_db().provide(both), fx.Effect[int, ErrA, Never])

# A layer that fails at build time adds its error.
failing_db = fx.Layer.effect(Db, fx.fail(ErrL()).as_("never"))
assert_type(failing_db, fx.Layer[Db, ErrL, Never])
assert_type(needs_db().provide(failing_db), fx.Effect[int, ErrA | ErrL, Never])

# A layer with requirements of its own passes them on.
log_from_db = fx.Layer.effect(Log, fx.service(Db).map(lambda url: [url]))
assert_type(log_from_db, fx.Layer[Log, Never, Db])
assert_type(log_from_db.provide(db_layer), fx.Layer[Log, Never, Never])
assert_type(log_from_db.provide_merge(db_layer), fx.Layer[Log | Db, Never, Never])

# scoped removes Scope, and only Scope.
resource = fx.acquire_release(fx.service(Db), lambda url, ex: fx.void)
assert_type(resource, fx.Effect[str, Never, Db | fx.Scope])
assert_type(fx.scoped(resource), fx.Effect[str, Never, Db])
finalized = fx.add_finalizer(lambda ex: fx.void).as_(1)
assert_type(finalized, fx.Effect[int, Never, fx.Scope])
assert_type(fx.scoped(finalized), fx.Effect[int, Never, Never])

# Layer.scoped removes Scope from the layer's requirements.
scoped_layer = fx.Layer.scoped(Db, fx.provide_service(Db, "inner")(resource))
assert_type(scoped_layer, fx.Layer[Db, Never, Never])


# A fully provided effect can be run.
def run_it() -> int:
    return fx.run_sync(needs_both().provide(both).catch_all(lambda e: fx.succeed(0)))


# The service type flows through `fx.service`.
assert_type(fx.service(Log), fx.Effect[list[str], Never, Log])
