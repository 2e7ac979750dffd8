"""The order's two state machines, fulfilment (`status`) and money (`payment_status`), as one table.

Every change of an order's state is a `Move` looked up in `TRANSITIONS` and taken by `take()` on an
order whose row the caller locked (`lock()`) in its open transaction: checkout's payment start and
give-up, Stripe's events, the return page's check, staff's ship and deliver, a cancel, a refund and
the sweep all come here. No other module assigns `status` or `payment_status`, so a rule written
here holds on every path, and two writers racing for one order are served one after the other,
the second seeing what the first did.

Why the money is decided before Stripe is asked: a cancel that asked Stripe for a refund first and
moved the order afterwards could lose to staff shipping it in between (shipped and refunded). Now
`CANCEL_AND_REFUND` moves the order under its lock (cancelled, `refund_pending`, the stock back)
and only then is Stripe asked, with an idempotency key derived from `refund_requests`, which the
move itself counts: any caller that sees this state derives the same key, and a new refund (after
Stripe's `refund.failed` made the order paid again) gets a new one.

`docs/payments.md` shows the diagram that `diagram()` draws from this table
(tests/payments/test_lifecycle.py keeps the two equal).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update

from shop.extensions import db
from shop.store import order_mail, refunds
from shop.store.models import Order, OrderItem, OrderStatus, PaymentStatus, Product

log = logging.getLogger(__name__)


class Move(enum.StrEnum):
    PAY = "pay"  # Stripe: the money arrived, and it matches the order
    PAY_AFTER_FAILURE = "pay after failure"  # it arrived for a session that had failed: staff refund it
    FAIL = "fail"  # no money will come (session expired, payment failed, session never created)
    SHIP = "ship"
    DELIVER = "deliver"
    CANCEL = "cancel"  # an unpaid order, by its shopper or staff (its session was expired first)
    CANCEL_AND_REFUND = "cancel and refund"  # a paid, unshipped order: the refund is asked after the move
    REFUND = "refund"  # staff: a cancelled order whose money is still ours
    REFUNDED = "refunded"  # Stripe's charge.refunded (the whole amount; a partial one is recorded, no move)
    REFUND_FAILED = "refund failed"  # Stripe's refund.failed: the money is ours again


ANY_PAYMENT = frozenset(PaymentStatus)


@dataclass(frozen=True, slots=True)
class Transition:
    """From any of `statuses` and any of `payments`, a move writes `status`/`payment` (None: unchanged)."""

    statuses: frozenset[OrderStatus]
    payments: frozenset[PaymentStatus]
    status: OrderStatus | None = None
    payment: PaymentStatus | None = None
    releases_stock: bool = False  # the order's quantities go back on the shelf (once: holds_stock)
    asks_refund: bool = False  # counted in refund_requests; the caller asks Stripe after commit
    mail: str | None = None  # the outbox e-mail this move sends


def _t(
    statuses: Iterable[OrderStatus],
    payments: Iterable[PaymentStatus],
    *,
    status: OrderStatus | None = None,
    payment: PaymentStatus | None = None,
    releases_stock: bool = False,
    asks_refund: bool = False,
    mail: str | None = None,
) -> Transition:
    return Transition(frozenset(statuses), frozenset(payments), status, payment, releases_stock, asks_refund, mail)


P, S = PaymentStatus, OrderStatus
# A move may have several rows (charge.refunded cancels an unshipped order, and only marks a shipped
# one refunded); the first row whose states hold applies. No row: the move is refused.
TRANSITIONS: dict[Move, tuple[Transition, ...]] = {
    Move.PAY: (_t({S.PLACED}, {P.PENDING}, payment=P.PAID, mail=order_mail.ORDER_CONFIRMED),),
    Move.PAY_AFTER_FAILURE: (_t({S.CANCELLED}, {P.FAILED}, payment=P.PAID),),
    Move.FAIL: (_t({S.PLACED}, {P.PENDING}, status=S.CANCELLED, payment=P.FAILED, releases_stock=True),),
    Move.SHIP: (_t({S.PLACED}, {P.PAID}, status=S.SHIPPED, mail=order_mail.ORDER_SHIPPED),),
    Move.DELIVER: (_t({S.SHIPPED}, ANY_PAYMENT, status=S.DELIVERED),),
    Move.CANCEL: (_t({S.PLACED}, {P.PENDING}, status=S.CANCELLED, payment=P.FAILED, releases_stock=True),),
    Move.CANCEL_AND_REFUND: (
        _t({S.PLACED}, {P.PAID}, status=S.CANCELLED, payment=P.REFUND_PENDING, releases_stock=True, asks_refund=True),
    ),
    Move.REFUND: (_t({S.CANCELLED}, {P.PAID}, payment=P.REFUND_PENDING, asks_refund=True),),
    Move.REFUNDED: (
        _t({S.PLACED}, {P.PENDING, P.PAID}, status=S.CANCELLED, payment=P.REFUNDED, releases_stock=True),
        _t({S.SHIPPED, S.DELIVERED, S.CANCELLED}, {P.PAID, P.REFUND_PENDING}, payment=P.REFUNDED),
    ),
    Move.REFUND_FAILED: (_t(set(S), {P.REFUND_PENDING, P.REFUNDED}, payment=P.PAID),),
}
del P, S

# The fulfilment status a person asks for, and the move that takes it there (shop.store.orders.move; a paid
# order's cancel goes through shop.payments, which settles the money: cancel_move).
STAFF_MOVES = {OrderStatus.SHIPPED: Move.SHIP, OrderStatus.DELIVERED: Move.DELIVER, OrderStatus.CANCELLED: Move.CANCEL}


class OrderNotFound(LookupError):
    pass


class TransitionRefused(Exception):
    """A move the table does not allow from where the order is; the message is for the person who asked."""


@dataclass(frozen=True, slots=True)
class Taken:
    """What a move did, for the caller to finish after its commit."""

    mailed: bool = False  # an e-mail is in the outbox: kick it after commit
    refund_key: str | None = None  # ask Stripe for the refund with this idempotency suffix after commit


def lock(order_id: int, *, user_id: int | None = None) -> Order:
    """The order, its row locked until the caller's transaction ends (fresh from the database).
    With `user_id`, only that user's: anyone else's raises OrderNotFound, as a missing one does."""
    statement = select(Order).where(Order.id == order_id).with_for_update()
    if user_id is not None:
        statement = statement.where(Order.user_id == user_id)
    order = db.session.scalar(statement.execution_options(populate_existing=True))
    if order is None:
        raise OrderNotFound(order_id)
    return order


def transition(order: Order, move: Move) -> Transition | None:
    """The row of `move` that applies to the order as it stands, or None."""
    status, payment = OrderStatus(order.status), PaymentStatus(order.payment_status)
    return next((t for t in TRANSITIONS[move] if status in t.statuses and payment in t.payments), None)


def allowed(order: Order, move: Move) -> bool:
    return transition(order, move) is not None


def take(order: Order, move: Move, *, by: str, tracking_number: str | None = None) -> Taken:
    """Take `move` on a locked order, in the caller's transaction; TransitionRefused if not allowed.
    `tracking_number` (checked by the caller's form) goes with a move that ships, and is written before
    the move's e-mail is rendered, so the "shipped" e-mail carries it."""
    found = transition(order, move)
    if found is None:
        raise TransitionRefused(_refusal(order, move))
    if tracking_number is not None:
        if found.status != OrderStatus.SHIPPED:
            raise TransitionRefused(f"Order #{order.id}: a tracking number goes with shipping only.")
        order.tracking_number = tracking_number
    was = (order.status, order.payment_status)
    if found.releases_stock:
        release_stock(order.id)
    if found.status is not None:
        order.status = found.status
    if found.payment is not None:
        order.payment_status = found.payment
    refund_key = None
    if found.asks_refund:
        order.refund_requests += 1
        order.stripe_refund_id = None
        refund_key = f"refund-{order.refund_requests}"
    db.session.flush()
    mailed = found.mail is not None and order_mail.enqueue(db.session, order.id, found.mail)
    if order.status != was[0]:
        log.info("order %s moved from %s to %s by %s (%s)", order.id, was[0], order.status, by, move)
    if order.payment_status != was[1]:
        log.info("order %s payment %s -> %s by %s (%s)", order.id, was[1], order.payment_status, by, move)
    return Taken(mailed=mailed, refund_key=refund_key)


def take_if_allowed(order: Order, move: Move, *, by: str) -> Taken | None:
    """`take`, or None (nothing written) when the order is past that move: how a duplicate, late or
    reordered event finds nothing left to do."""
    return take(order, move, by=by) if allowed(order, move) else None


def _refusal(order: Order, move: Move) -> str:
    if move == Move.SHIP and order.status == OrderStatus.PLACED:
        label = PaymentStatus(order.payment_status).label.lower()
        return f"Order #{order.id} cannot be shipped: its payment is {label}."
    target = next((t.status for t in TRANSITIONS[move] if t.status is not None), None)
    return refusal(order, target.value if target else str(move))


def refusal(order: Order, target: str) -> str:
    """Why the order cannot become `target` from where it is, and where it can go (what the menu offers)."""
    allowed = ", ".join(status.value for status in staff_moves(order)) or "none: it is final"
    return f"Order #{order.id} is {order.status} and cannot be {target}; allowed from here: {allowed}."


def next_statuses(status: str | OrderStatus) -> list[OrderStatus]:
    """The fulfilment statuses staff can ask for from `status` (the payment decides later whether it holds)."""
    current = OrderStatus(status)
    reachable = {
        t.status
        for move in (Move.SHIP, Move.DELIVER, Move.CANCEL, Move.CANCEL_AND_REFUND)
        for t in TRANSITIONS[move]
        if current in t.statuses and t.status is not None
    }
    return [s for s in OrderStatus if s in reachable]


def staff_moves(order: Order) -> dict[OrderStatus, Move]:
    """The fulfilment statuses staff can move this order to now, each with the move that takes it there:
    exactly the moves `take` accepts from its status and payment both, so the admin's *Move to* menu
    never offers one the server refuses (shipping an unpaid order, say). A cancel is `cancel_move`'s."""
    wanted = {**STAFF_MOVES, OrderStatus.CANCELLED: cancel_move(order)}
    return {
        target: move
        for target, move in wanted.items()
        if (found := transition(order, move)) is not None and found.status == target
    }


def cancel_move(order: Order) -> Move:
    """How an order is cancelled (or, already cancelled, refunded) from where it stands."""
    if order.status == OrderStatus.CANCELLED and order.payment_status == PaymentStatus.PAID:
        return Move.REFUND
    return Move.CANCEL_AND_REFUND if order.payment_status == PaymentStatus.PAID else Move.CANCEL


# --- stock -------------------------------------------------------------------------------------------------


def release_stock(order_id: int) -> bool:
    """Give the order's quantities back to stock if it still holds them, in the caller's transaction;
    False if they were already given back. The flag flips in the same statement that checks it, so
    whatever path comes second (and a move that is somehow taken twice) gives nothing back again."""
    released = db.session.execute(
        update(Order)
        .where(Order.id == order_id, Order.holds_stock.is_(True))
        .values(holds_stock=False)
        .returning(Order.id)
        .execution_options(synchronize_session=False)
    ).first()
    if released is None:
        return False
    # Units a partial refund put back already (shop.store.refunds) are not given back a second time.
    restocked = refunds.restocked(order_id)
    items = db.session.execute(
        select(OrderItem.product_id, OrderItem.quantity, OrderItem.id)
        .where(OrderItem.order_id == order_id, OrderItem.product_id.is_not(None))
        .order_by(OrderItem.product_id)  # product-id order, as checkout takes them: no deadlock
    ).all()
    for product_id, quantity, item_id in items:
        quantity -= restocked.get(item_id, 0)
        if quantity <= 0:
            continue
        db.session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(stock=Product.stock + quantity)
            .execution_options(synchronize_session=False)
        )
    return True


# --- the diagram in docs/payments.md ----------------------------------------------------------------------


def diagram() -> str:
    """Both machines as Mermaid state diagrams, drawn from TRANSITIONS (docs/payments.md embeds it)."""
    fulfilment: dict[tuple[str, str], list[str]] = {}
    payment: dict[tuple[str, str], list[str]] = {}
    for move, rows in TRANSITIONS.items():
        for row in rows:
            if row.status is not None:
                for status in sorted(row.statuses):
                    fulfilment.setdefault((status, row.status), []).append(move.value)
            if row.payment is not None:
                for paid in sorted(row.payments):
                    payment.setdefault((paid, row.payment), []).append(move.value)

    def draw(title: str, start: str, edges: dict[tuple[str, str], list[str]]) -> str:
        lines = ["```mermaid", "stateDiagram-v2", f"    %% {title}", f"    [*] --> {start}"]
        for (source, target), moves in sorted(edges.items()):
            lines.append(f"    {source} --> {target}: {', '.join(sorted(set(moves)))}")
        return "\n".join([*lines, "```"])

    return "\n\n".join(
        [
            draw("fulfilment: orders.status", OrderStatus.PLACED, fulfilment),
            draw("money: orders.payment_status", PaymentStatus.PENDING, payment),
        ]
    )
