"""`/account/addresses`: the shopper's address book (add, edit, delete, choose the default)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from shop.auth.decorators import form_login_required, login_required
from shop.store import addresses
from shop.storefront import bp
from shop.storefront.forms import AddressForm


def _book():
    return url_for("store.addresses_page")


@bp.route("/account/addresses", methods=["GET", "POST"])
@login_required
def addresses_page():
    form = AddressForm()
    if form.validate_on_submit():
        try:
            addresses.add(g.user.id, form.address(), make_default=form.make_default.data)
        except addresses.AddressError as exc:
            flash(str(exc), "error")
        else:
            flash("Address added.", "success")
            return redirect(_book())
    elif request.method == "POST":
        flash("Check the address: some fields need attention.", "error")
    status = 400 if request.method == "POST" else 200
    return render_template("store/addresses.html", addresses=addresses.list_for_user(g.user.id), form=form), status


@bp.route("/account/addresses/<id:address_id>/edit", methods=["GET", "POST"])
@login_required
def address_edit(address_id: int):
    address = addresses.get_for_user(g.user.id, address_id)
    if address is None:
        abort(404)
    form = AddressForm(obj=address)
    if form.validate_on_submit():
        addresses.edit(g.user.id, address_id, form.address(), make_default=form.make_default.data)
        flash("Address saved. Orders already placed keep the address they were placed with.", "success")
        return redirect(_book())
    status = 400 if request.method == "POST" else 200
    return render_template("store/address_edit.html", address=address, form=form), status


@bp.post("/account/addresses/<id:address_id>/default")
@form_login_required(lambda **_: _book())
def address_default(address_id: int):
    if not addresses.set_default(g.user.id, address_id):
        abort(404)
    flash("Default address changed.", "success")
    return redirect(_book())


@bp.post("/account/addresses/<id:address_id>/delete")
@form_login_required(lambda **_: _book())
def address_delete(address_id: int):
    if not addresses.delete(g.user.id, address_id):
        abort(404)
    flash("Address deleted.", "success")
    return redirect(_book())
