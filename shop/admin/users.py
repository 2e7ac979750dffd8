"""Staff: users (search, role shown, the opted-in filter), one user's whole mirrored record, and
role changes, logged by shop.auth.roles."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select

from shop.admin import bp
from shop.admin.forms import RoleForm
from shop.auth.decorators import admin_required
from shop.auth.roles import change_role
from shop.extensions import db
from shop.forms import first_error
from shop.inputs import one_page, search_text, submitted
from shop.mirror import email_key
from shop.models import Role, User
from shop.store.catalogue import escape_like

PER_PAGE = 50
MAX_QUERY_LENGTH = 200


@bp.get("/users")
@admin_required
def users_list():
    query = search_text("q", MAX_QUERY_LENGTH)
    include_deleted = request.args.get("deleted") == "1"
    opted_in = request.args.get("opted_in") == "1"
    statement = select(User).order_by(User.created_at.desc(), User.id.desc())
    if not include_deleted:
        statement = statement.where(User.deleted_at.is_(None))
    if opted_in:  # the shopper's own choice (unsafe_metadata): for sending news, never for authorising
        statement = statement.where(User.marketing_opt_in)
    if query:
        pattern = f"%{escape_like(query)}%"
        statement = statement.where(
            or_(
                # The address as uniqueness sees it, so a search finds what a look-up would.
                User.email_key.like(f"%{escape_like(email_key(query))}%", escape="\\"),
                User.clerk_id.ilike(pattern, escape="\\"),
                func.concat_ws(" ", User.first_name, User.last_name).ilike(pattern, escape="\\"),
            )
        )
    page = one_page(lambda limit, offset: db.session.scalars(statement.limit(limit).offset(offset)).all(), PER_PAGE)
    return render_template(
        "admin/users.html",
        users=page.items,
        has_next=page.has_next,
        page=page.number,
        query=query,
        include_deleted=include_deleted,
        opted_in=opted_in,
        roles=list(Role),
    )


def _pretty(metadata: dict[str, Any] | None) -> str | None:
    return None if metadata is None else json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False)


@bp.get("/users/<id:user_id>")
@admin_required
def user_detail(user_id: int):
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    metadata = {
        "public_metadata": _pretty(user.public_metadata),
        "private_metadata": _pretty(user.private_metadata),
        "unsafe_metadata": _pretty(user.unsafe_metadata),
    }
    return render_template("admin/user.html", user=user, metadata=metadata, roles=list(Role))


@bp.post("/users/<id:user_id>/role")
@admin_required
def user_role(user_id: int):
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    form = RoleForm()
    back = url_for("admin.users_list", q=form.q.data or None)
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(back)
    role = Role(submitted(form.role.data))
    if user.is_deleted:
        flash("A deleted user has no role to change.", "error")
    elif user.id == g.user.id and role != Role.ADMIN:
        flash("You cannot remove your own ADMIN role; ask another admin (or use flask users set-role).", "error")
    elif change_role(user, role, by=f"admin {g.user.clerk_id} (admin users page)"):
        db.session.commit()
        flash(f"{user.email or user.clerk_id} is now {role.value}.", "success")
    else:
        flash(f"{user.email or user.clerk_id} was already {role.value}.", "info")
    return redirect(back)
