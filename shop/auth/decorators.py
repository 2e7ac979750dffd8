"""`login_required` and `admin_required`: views ask, the session hook has already answered."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g, jsonify, redirect, url_for

from shop.auth.redirects import return_path
from shop.errors import wants_json


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
        if not g.user.is_admin:  # read from the row on this request: a demotion counts at once
            abort(403)
        return view(*args, **kwargs)

    return wrapped
