"""`login_required`, `form_login_required` and `admin_required`: views ask, the session hook has already answered."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, flash, g, jsonify, redirect, url_for

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


def form_login_required(back_to: Callable[..., str]) -> Callable:
    """`login_required` for a form's POST: signed out (say, a session that lapsed while the page
    was open), go through sign-in back to the page the form was on, not to the POST's own URL
    (which a browser would then GET)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if g.get("user") is None:
                flash("Please sign in again, then repeat what you were doing.", "info")
                return redirect(url_for("auth.sign_in", next=back_to(**kwargs)))
            return view(*args, **kwargs)

        return wrapped

    return decorate


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not g.user.is_admin:  # read from the row on this request: a demotion counts at once
            abort(403)
        return view(*args, **kwargs)

    return wrapped
