"""The signed-in shopper's orders as JSON: `GET /api/orders` (newest first), `GET /api/orders/<id>`."""

from __future__ import annotations

from flask import abort, g, jsonify

from shop.auth.decorators import login_required
from shop.store import orders
from shop.storefront import bp


@bp.get("/api/orders")
@login_required
def api_orders():
    return jsonify(orders=[order.to_dict() for order in orders.history(g.user.id)])


@bp.get("/api/orders/<id:order_id>")
@login_required
def api_order(order_id: int):
    order = orders.get_for_user(g.user.id, order_id)
    if order is None:
        abort(404)
    return jsonify(orders.OrderSummary.of_model(order).to_dict())
