"""An outbox row that cannot be built is given up at once, and the others are still sent; a failed
e-mail can be sent again (`flask mail retry`, the admin's button); `shop_mail_failed` counts them."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from shop.extensions import db
from shop.mail import outbox
from shop.mail.models import MailStatus, OutboxMail
from shop.models import Role
from tests.metrics.support import AUTH, TOKEN, samples, value
from tests.store.conftest import csrf_token_from
from tests.support import csrf_token, wait_for

INJECTED = "a@example.com\r\nBcc: x@evil.example"
LINE_BREAK = "The message could not be built: the recipient address contains a line break."


@pytest.fixture
def mail_app(make_app, tmp_path):
    """No SMTP server: the development mailbox, a folder of this test's own."""
    return make_app(MAIL_DIR=str(tmp_path), METRICS_TOKEN=TOKEN)


def add_mail(app, to_address: str | None, *, status: str = MailStatus.PENDING, attempts: int = 0) -> int:
    """An outbox row of no order (the outbox needs none), due now; its id."""
    with app.app_context():
        mail = OutboxMail(
            dedup_key=f"test-{uuid.uuid4().hex}",
            kind="order_confirmed",
            to_address=to_address,
            subject="Order #1 confirmed: payment received",
            body="Thank you.\n",
            status=status,
            attempts=attempts,
            last_error="SMTPRecipientsRefused: the server refused the recipient" if status == "failed" else None,
        )
        db.session.add(mail)
        db.session.commit()
        return mail.id


def rows(app) -> dict[int, tuple[str, int, str | None]]:
    """Every outbox row: id -> (status, attempts, last_error)."""
    with app.app_context():
        found = db.session.execute(select(OutboxMail.id, OutboxMail.status, OutboxMail.attempts, OutboxMail.last_error))
        result = {row.id: (row.status, row.attempts, row.last_error) for row in found}
        db.session.rollback()
        return result


def written(tmp_path) -> list[str]:
    return sorted(path.name for path in tmp_path.glob("*.eml"))


def test_a_row_that_cannot_be_built_is_failed_at_once_and_the_next_one_is_sent(mail_app, tmp_path, caplog):
    bad, good = add_mail(mail_app, INJECTED), add_mail(mail_app, "good@example.com")
    with mail_app.app_context():
        report = outbox.send_due()
    assert (report.sent, report.failed, report.errors) == (1, 0, [])
    assert report.unbuildable == [f"mail {bad}: {LINE_BREAK}"]
    assert rows(mail_app) == {bad: ("failed", 1, LINE_BREAK), good: ("sent", 1, None)}
    assert written(tmp_path) == [f"{good:06d}-order_confirmed.eml"]
    assert "evil" not in caplog.text and "a@example.com" not in caplog.text  # no address in the logs
    with mail_app.app_context():
        assert outbox.send_due().sent == 0  # given up: not tried again by the next run


def test_send_pending_goes_on_past_it_and_exits_0(make_app, tmp_path):
    app = make_app(MAIL_DIR=str(tmp_path))
    bad, good = add_mail(app, INJECTED), add_mail(app, "good@example.com")
    result = app.test_cli_runner().invoke(args=["mail", "send-pending", "--now"])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert f"mail {bad}: {LINE_BREAK}" in result.output
    assert "sent 1, failed 0, could not be built 1" in result.output
    assert "evil" not in result.output
    assert rows(app)[bad][0] == "failed" and rows(app)[good][0] == "sent"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        (None, "it has no recipient address (erased with the customer's data)"),
        ("a\x1bb@example.com", "the recipient address contains a control character"),  # PostgreSQL stores no NUL
        ("a\tb@example.com", "the recipient address contains a control character"),
        ("a@example.com\u2028Bcc: x@evil.example", "the recipient address contains a line break"),
        ('"', "the e-mail package refused it (IndexError)"),  # Python's address parser raises IndexError
    ],
    ids=["erased", "escape", "tab", "unicode-line-separator", "unparsable"],
)
def test_every_kind_of_unbuildable_row_is_given_up_with_its_reason(mail_app, tmp_path, address, reason):
    bad, good = add_mail(mail_app, address), add_mail(mail_app, "good@example.com")
    with mail_app.app_context():
        report = outbox.send_due()
    assert report.sent == 1 and report.failed == 0
    assert rows(mail_app) == {
        bad: ("failed", 1, f"The message could not be built: {reason}."),
        good: ("sent", 1, None),
    }
    assert written(tmp_path) == [f"{good:06d}-order_confirmed.eml"]


def test_a_sender_that_cannot_be_used_gives_up_no_row(make_app, tmp_path):
    app = make_app(MAIL_DIR=str(tmp_path), MAIL_FROM="Shop <shop@example.com>\r\nBcc: x@evil.example")
    mail = add_mail(app, "good@example.com")
    result = app.test_cli_runner().invoke(args=["mail", "send-pending", "--now"])
    assert result.exit_code == 1
    assert "MAIL_FROM cannot be used as the sender" in result.output
    assert rows(app) == {mail: ("pending", 0, None)}  # the setting is at fault, not the row


# --- flask mail retry -------------------------------------------------------------------------------------------


def test_retry_makes_a_failed_mail_pending_and_sends_it(mail_app, tmp_path):
    failed = add_mail(mail_app, "good@example.com", status=MailStatus.FAILED, attempts=outbox.MAX_ATTEMPTS)
    result = mail_app.test_cli_runner().invoke(args=["mail", "retry", str(failed)])
    assert result.exit_code == 0, result.output
    assert f"pending again: mail {failed}" in result.output
    assert "sent 1, failed 0" in result.output
    assert rows(mail_app) == {failed: ("sent", 1, None)}  # attempts started again from 0
    assert written(tmp_path) == [f"{failed:06d}-order_confirmed.eml"]


def test_retry_all_failed(mail_app):
    first = add_mail(mail_app, "one@example.com", status=MailStatus.FAILED, attempts=outbox.MAX_ATTEMPTS)
    second = add_mail(mail_app, "two@example.com", status=MailStatus.FAILED, attempts=outbox.MAX_ATTEMPTS)
    sent = add_mail(mail_app, "three@example.com", status=MailStatus.SENT, attempts=1)
    runner = mail_app.test_cli_runner()
    result = runner.invoke(args=["mail", "retry", "--all-failed"])
    assert result.exit_code == 0, result.output
    assert f"pending again: mail {first}, mail {second}" in result.output
    assert {mail_id: row[0] for mail_id, row in rows(mail_app).items()} == {first: "sent", second: "sent", sent: "sent"}
    again = runner.invoke(args=["mail", "retry", "--all-failed"])
    assert (again.exit_code, again.output.strip()) == (0, "No failed e-mails.")


def test_retry_refuses_a_mail_that_is_not_failed_and_an_unknown_id(mail_app):
    sent = add_mail(mail_app, "sent@example.com", status=MailStatus.SENT, attempts=1)
    pending = add_mail(mail_app, "pending@example.com", attempts=2)
    before = rows(mail_app)
    result = mail_app.test_cli_runner().invoke(args=["mail", "retry", str(sent), str(pending), "999"])
    assert result.exit_code == 1
    assert f"mail {sent}: sent, not failed: only a failed e-mail is sent again" in result.output
    assert f"mail {pending}: pending, not failed: only a failed e-mail is sent again" in result.output
    assert "mail 999: no such e-mail" in result.output
    assert "Nothing retried." in result.output
    assert rows(mail_app) == before  # nothing sent, nothing reset


def test_retry_needs_ids_or_all_failed_not_both(mail_app):
    runner = mail_app.test_cli_runner()
    nothing = runner.invoke(args=["mail", "retry"])
    assert nothing.exit_code == 2 and "Give MAIL_ID… or --all-failed" in nothing.output
    assert runner.invoke(args=["mail", "retry", "1", "--all-failed"]).exit_code == 2
    assert runner.invoke(args=["mail", "retry", str(2**63)]).exit_code == 2  # refused before SQL: no BIGINT holds it


def test_retrying_a_mail_that_still_cannot_be_built_fails_it_again_and_exits_1(mail_app):
    bad = add_mail(mail_app, INJECTED, status=MailStatus.FAILED, attempts=1)
    result = mail_app.test_cli_runner().invoke(args=["mail", "retry", str(bad)])
    assert result.exit_code == 1
    assert f"mail {bad}: {LINE_BREAK}" in result.output and "evil" not in result.output
    assert rows(mail_app) == {bad: ("failed", 1, LINE_BREAK)}


# --- the admin's button -------------------------------------------------------------------------------------------


@pytest.fixture
def staff(mail_app, sign_in):
    client = mail_app.test_client()
    sign_in("user_staff", as_client=client, role=Role.ADMIN)
    return client


def test_the_admin_button_sends_a_failed_mail_again(mail_app, staff, tmp_path):
    failed = add_mail(mail_app, "good@example.com", status=MailStatus.FAILED, attempts=outbox.MAX_ATTEMPTS)
    listing = staff.get("/admin/mail").get_data(as_text=True)
    assert f'action="/admin/mail/{failed}/retry"' in listing and "Send again" in listing
    detail = staff.get(f"/admin/mail/{failed}").get_data(as_text=True)
    assert f'action="/admin/mail/{failed}/retry"' in detail and "SMTPRecipientsRefused" in detail
    token = csrf_token_from(staff, "/admin/mail")
    response = staff.post(
        f"/admin/mail/{failed}/retry", data={"csrf_token": token, "next": "/admin/mail"}, follow_redirects=True
    )
    assert response.status_code == 200
    assert response.request.path == "/admin/mail"
    assert f"E-mail #{failed} is pending again and is being sent now." in response.get_data(as_text=True)
    wait_for(lambda: rows(mail_app)[failed][0] == "sent", what="the e-mail sent again")
    assert rows(mail_app) == {failed: ("sent", 1, None)}
    assert written(tmp_path) == [f"{failed:06d}-order_confirmed.eml"]


def test_the_admin_button_needs_its_csrf_token(mail_app, staff):
    failed = add_mail(mail_app, "good@example.com", status=MailStatus.FAILED, attempts=outbox.MAX_ATTEMPTS)
    assert staff.post(f"/admin/mail/{failed}/retry", data={}).status_code == 400
    assert rows(mail_app)[failed][0] == "failed"


def test_the_admin_button_refuses_a_mail_that_is_not_failed(mail_app, staff):
    sent = add_mail(mail_app, "sent@example.com", status=MailStatus.SENT, attempts=1)
    assert "Send again" not in staff.get(f"/admin/mail/{sent}").get_data(as_text=True)  # no button to press
    token = csrf_token(mail_app, staff)  # a valid token: no page offers this form
    response = staff.post(f"/admin/mail/{sent}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert response.request.path == f"/admin/mail/{sent}"
    assert f"E-mail #{sent} is sent, not failed: only a failed e-mail is sent again." in response.get_data(as_text=True)
    assert rows(mail_app)[sent] == ("sent", 1, None)
    assert staff.post("/admin/mail/999/retry", data={"csrf_token": token}).status_code == 404


def test_the_admin_button_is_for_staff_only(mail_app, sign_in):
    failed = add_mail(mail_app, "good@example.com", status=MailStatus.FAILED, attempts=outbox.MAX_ATTEMPTS)
    shopper = mail_app.test_client()
    sign_in("user_shopper", as_client=shopper)
    token = csrf_token(mail_app, shopper)
    assert shopper.post(f"/admin/mail/{failed}/retry", data={"csrf_token": token}).status_code == 403
    assert rows(mail_app)[failed][0] == "failed"


# --- the metric ---------------------------------------------------------------------------------------------------


def test_failed_mail_is_a_gauge_on_metrics(mail_app):
    client = mail_app.test_client()
    assert value(samples(client.get("/metrics", headers=AUTH).get_data(as_text=True)), "shop_mail_failed") == 0
    assert "shop_mail_failed 0.0" in client.get("/metrics", headers=AUTH).get_data(as_text=True)
    add_mail(mail_app, "one@example.com", status=MailStatus.FAILED, attempts=outbox.MAX_ATTEMPTS)
    add_mail(mail_app, INJECTED, status=MailStatus.FAILED, attempts=1)
    add_mail(mail_app, "pending@example.com")
    add_mail(mail_app, "sent@example.com", status=MailStatus.SENT, attempts=1)
    assert value(samples(client.get("/metrics", headers=AUTH).get_data(as_text=True)), "shop_mail_failed") == 2
