"""Staff: the e-mail outbox, and in development the messages written under instance/mail/; a failed
e-mail can be sent again (the same `outbox.retry_failed` as `flask mail retry`)."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from flask import abort, current_app, flash, redirect, render_template, url_for
from sqlalchemy import select

from shop.admin import bp
from shop.admin.forms import MailRetryForm
from shop.auth.decorators import admin_required
from shop.auth.redirects import safe_next
from shop.extensions import db
from shop.forms import first_error
from shop.mail import outbox
from shop.mail.models import OutboxMail
from shop.mail.transport import mail_folder

LIMIT = 50
SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID")


@bp.get("/mail")
@admin_required
def mail_list():
    mails = db.session.scalars(select(OutboxMail).order_by(OutboxMail.id.desc()).limit(LIMIT)).all()
    return render_template("admin/mail.html", mails=mails, limit=LIMIT, smtp=current_app.config["MAIL_SMTP"])


@bp.get("/mail/<id:mail_id>")
@admin_required
def mail_detail(mail_id: int):
    mail = db.session.get(OutboxMail, mail_id)
    if mail is None:
        abort(404)
    written = None
    if mail.file_name:
        # The stored name only (never a path from the request): the file this shop wrote for it.
        path = mail_folder(current_app.config, current_app.instance_path) / Path(mail.file_name).name
        if path.is_file():
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            headers = "".join(f"{name}: {value}\n" for name, value in message.items() if name in SHOWN_HEADERS)
            written = f"{headers}\n{message.get_content()}"
    return render_template("admin/mail_message.html", mail=mail, written=written)


@bp.post("/mail/<id:mail_id>/retry")
@admin_required
def mail_retry(mail_id: int):
    """A failed e-mail: pending again with fresh attempts, and sent now in the background."""
    form = MailRetryForm()
    back = safe_next(form.next.data, url_for("admin.mail_detail", mail_id=mail_id))
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(back)
    result = outbox.retry_failed([mail_id])
    if result.unknown:
        abort(404)
    if result.retried:
        outbox.kick()
        flash(f"E-mail #{mail_id} is pending again and is being sent now.", "success")
    else:
        status = result.not_failed[mail_id]
        flash(f"E-mail #{mail_id} is {status}, not failed: only a failed e-mail is sent again.", "error")
    return redirect(back)
