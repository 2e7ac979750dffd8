"""What an order's refunds come to, from Stripe's refund events in whatever order they arrive.

Stripe speaks of refunds in two events. `charge.refunded` carries the charge with its running total,
`amount_refunded`: every refund created so far, less those that had failed by then. `refund.failed`
carries one refund the bank refused (days later, as a rule). A delivery that fails is retried for
days, so the two can come in any order, twice, or late; neither may simply overwrite the total:

- the newest `charge.refunded` (by the event's `created`) is kept, its total and its time
  (`orders.stripe_refunded_cents`, `stripe_refunded_as_of`); an older one changes nothing. Within one
  second, the larger total is the later (refunds only add up, until one fails);
- each failed refund is kept once (`failed_refunds`), with when it was created and when it failed;
- what is refunded (`orders.refunded_cents`) is that total less the failed refunds it still counts:
  those created at or before it and failed at or after it.

So a `refund.failed` that overtakes the `charge.refunded` it follows still takes its money off, and
that late `charge.refunded` cannot call the order refunded. Stripe's times are whole seconds: a
failure in the same second as the total is taken to follow it, so a doubtful total never counts money
as returned that may not have been (fail closed: staff then see the refund as failed, not done).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert

from shop.extensions import db
from shop.store.models import FailedRefund, Order


def _failures_still_counted(order: Order) -> tuple[int, int]:
    """How many failed refunds the kept total still counts, and their amount. With no time kept (no
    total yet, or one kept before times were), every failure is taken off, as it always was."""
    query = select(func.count(), func.coalesce(func.sum(FailedRefund.amount_cents), 0)).where(
        FailedRefund.order_id == order.id
    )
    if (as_of := order.stripe_refunded_as_of) is not None:
        query = query.where(
            or_(FailedRefund.refund_created_at.is_(None), FailedRefund.refund_created_at <= as_of),
            or_(FailedRefund.failed_at.is_(None), FailedRefund.failed_at >= as_of),
        )
    count, cents = db.session.execute(query).one()
    return count, cents


def _settle(order: Order) -> int:
    """`refunded_cents` from the kept total and the failures; how many failures it still counted."""
    count, cents = _failures_still_counted(order)
    order.refunded_cents = max(0, order.stripe_refunded_cents - cents)
    return count


class Total(enum.Enum):
    """What a `charge.refunded` said, against what the order knew."""

    OLDER = "older"  # not the newest total: nothing changes
    IN_FULL = "in full"  # the newest, the whole charge, and no refund in it has failed: REFUNDED
    PART = "part"  # the newest, but not all of the charge (or counting a refund that failed since)


def charge_refunded(order: Order, amount_refunded: int | None, in_full: bool, created: datetime | None) -> Total:
    """Keep a charge's total (`amount_refunded`, and its `refunded` flag) from `charge.refunded` if it is
    the newest, and work out `refunded_cents` again."""
    if amount_refunded is None:
        return Total.OLDER
    kept, as_of = order.stripe_refunded_cents, order.stripe_refunded_as_of
    if as_of is None:  # nothing timed yet: the larger total is the later
        newest = amount_refunded >= kept
    elif created is None:  # an event with no time cannot be placed against the one kept
        newest = False
    else:
        newest = created > as_of or (created == as_of and amount_refunded > kept)
    if not newest:
        return Total.OLDER
    order.stripe_refunded_cents, order.stripe_refunded_as_of = amount_refunded, created
    failures_counted = _settle(order)
    return Total.IN_FULL if in_full and failures_counted == 0 else Total.PART


class Failure(enum.Enum):
    """What a `refund.failed` said, against what the order knew."""

    REPEATED = "repeated"  # this refund's failure was kept already: nothing more
    NEWS = "news"  # the money is the order's again: REFUND_FAILED
    SUPERSEDED = "superseded"  # a newer total already left the refund out: kept, the order stands as it is


def refund_failed(
    order: Order, refund_id: str, amount: int, refund_created: datetime | None, failed: datetime | None
) -> Failure:
    """Keep a refund's failure (`refund.failed`) and take it off what is refunded."""
    kept = db.session.execute(
        insert(FailedRefund)
        .values(
            stripe_refund_id=refund_id,
            order_id=order.id,
            amount_cents=amount,
            refund_created_at=refund_created,
            failed_at=failed,
        )
        .on_conflict_do_nothing(index_elements=["stripe_refund_id"])
        .returning(FailedRefund.stripe_refund_id)
    ).first()
    if kept is None:
        return Failure.REPEATED
    _settle(order)
    as_of = order.stripe_refunded_as_of
    if as_of is not None and failed is not None and as_of > failed:
        return Failure.SUPERSEDED
    return Failure.NEWS
