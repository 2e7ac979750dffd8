from __future__ import annotations

from flask import abort, current_app, g, redirect, render_template, request

from shop.auth import bp
from shop.auth.decorators import login_required
from shop.auth.redirects import safe_next
from shop.extensions import db
from shop.models import User


def missing_clerk_settings() -> list[str]:
    config = current_app.config
    if config["SHOP_DEV_AUTH"]:
        return []
    return [] if config.get("CLERK_PUBLISHABLE_KEY") else ["CLERK_PUBLISHABLE_KEY"]


@bp.get("/sign-in")
def sign_in():
    next_url = safe_next(request.args.get("next"))
    if g.user is not None:
        return redirect(next_url)
    return render_template("auth/sign_in.html", next_url=next_url, missing=missing_clerk_settings())


@bp.get("/sign-out")
def sign_out():
    return render_template("auth/sign_out.html")


@bp.get("/account")
@login_required
def account():
    # The whole row: the page shows what the shop holds, including fields the per-request snapshot lacks.
    user = db.session.get(User, g.user.id)
    if user is None or user.is_deleted:
        abort(404)
    return render_template("auth/account.html", user=user)
