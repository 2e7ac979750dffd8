from flask import render_template
from sqlalchemy import func, select

from shop import health
from shop.admin import bp
from shop.admin.health import figures
from shop.auth.decorators import admin_required
from shop.extensions import db
from shop.models import User, WebhookEvent, WebhookStatus
from shop.store import orders, stock_alerts
from shop.store.models import Product


@bp.get("/")
@admin_required
def index():
    product_counts = db.session.execute(
        select(func.count(), func.count().filter(Product.active.is_(True))).select_from(Product)
    ).one()
    low_stock, more_low_stock = stock_alerts.low_stock()
    return render_template(
        "admin/index.html",
        low_stock=low_stock,
        more_low_stock=more_low_stock,
        order_counts=orders.count_by_status(),
        products_total=product_counts[0],
        products_active=product_counts[1],
        users_live=db.session.scalar(select(func.count()).select_from(User).where(User.deleted_at.is_(None))),
        webhooks_failed=db.session.scalar(
            select(func.count()).select_from(WebhookEvent).where(WebhookEvent.status == WebhookStatus.FAILED)
        ),
        mirror_health=figures(health.read(db.session.connection())),
    )
