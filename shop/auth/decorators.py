"""`login_required` and `admin_required`: views ask, the session hook has already answered."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g, jsonify, redirect, request, url_for

from shop.auth import signed_in
from shop.auth.redirects import return_path


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            if wants_json():
                return jsonify(error="Not signed in"), 401
            return redirect(url_for("auth.sign_in", next=return_path()))
        return view(*args, **kwargs)

    return wrapped


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        # Staff rights come from the row as it is now, never from the cached snapshot: a
        # demoted admin loses them with the next request.
        user = signed_in.load(g.user.clerk_id)
        if user is None or user.is_deleted or not user.is_admin:
            abort(403)
        g.user = user
        return view(*args, **kwargs)

    return wrapped
