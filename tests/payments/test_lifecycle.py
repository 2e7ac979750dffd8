"""The order's state machines: one table, the diagram in docs/payments.md drawn from it, and no module
but shop/store/lifecycle.py writing either status."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from shop import PROJECT_ROOT
from shop.store import lifecycle
from shop.store.lifecycle import TRANSITIONS, Move
from shop.store.models import OrderStatus, PaymentStatus

DOC = PROJECT_ROOT / "docs" / "payments.md"
DIAGRAM = re.compile(r"<!-- lifecycle diagram: begin -->\n(.*?)\n<!-- lifecycle diagram: end -->", re.DOTALL)


def test_the_documented_diagram_is_the_table():
    documented = DIAGRAM.search(DOC.read_text())
    assert documented is not None, "docs/payments.md lost its lifecycle diagram markers"
    assert documented.group(1) == lifecycle.diagram(), (
        "docs/payments.md's diagram differs from shop/store/lifecycle.py's table; put this between its markers:\n"
        + lifecycle.diagram()
    )


def test_every_move_has_a_row_and_no_two_rows_of_a_move_overlap():
    assert set(TRANSITIONS) == set(Move)
    for move, rows in TRANSITIONS.items():
        assert rows, move
        seen: set[tuple[OrderStatus, PaymentStatus]] = set()
        for row in rows:
            states = {(status, payment) for status in row.statuses for payment in row.payments}
            assert not states & seen, f"{move}: two rows apply to the same state"
            seen |= states


def test_nothing_leaves_a_final_state_but_money_coming_back():
    for move, rows in TRANSITIONS.items():
        for row in rows:
            if OrderStatus.DELIVERED in row.statuses or OrderStatus.CANCELLED in row.statuses:
                assert row.status is None, f"{move} moves a delivered or cancelled order"
            assert not (row.asks_refund and row.status == OrderStatus.SHIPPED)


STATUSES = {"status", "payment_status"}


def _order_status_writes(source: str) -> list[int]:
    """Lines that write an order's status: `order.status = …`, `Order(status=…)`, and
    `update(Order)….values(payment_status=…)`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in STATUSES
                    and "order" in ast.unparse(target.value).lower()
                ):
                    lines.append(node.lineno)
        if isinstance(node, ast.Call) and {keyword.arg for keyword in node.keywords} & STATUSES:
            called = ast.unparse(node.func)
            if called == "Order" or (called.endswith(".values") and "update(Order)" in ast.unparse(node.func)):
                lines.append(node.lineno)
    return lines


def test_no_other_module_writes_an_orders_status():
    writers = {}
    for path in sorted(Path(PROJECT_ROOT / "shop").rglob("*.py")):
        if path.name != "lifecycle.py" and (found := _order_status_writes(path.read_text())):
            writers[str(path.relative_to(PROJECT_ROOT))] = found
    assert writers == {}, f"only shop/store/lifecycle.py may write an order's status: {writers}"


def test_the_check_finds_a_write():
    assert _order_status_writes("order.payment_status = 'paid'\nOrder(status='placed')\n") == [1, 2]
    assert _order_status_writes("db.session.execute(update(Order).values(status='x'))") == [1]
    assert _order_status_writes("mail.status = 'sent'\nrender(status=status)") == []
