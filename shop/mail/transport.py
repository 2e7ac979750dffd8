"""Where an e-mail goes: an SMTP server (smtplib), or in development a file under instance/mail/."""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

SMTP_TIMEOUT = 10


def mail_folder(config: Any, instance_path: str) -> Path:
    """The development mailbox: MAIL_DIR, or instance/mail/."""
    return Path(config["MAIL_DIR"] or Path(instance_path) / "mail")


# Everything str.splitlines() breaks at: the `email` package refuses these in a header (a new header
# could start there, such as a Bcc: slipped into an address).
LINE_BREAK = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
# The other C0 and C1 controls and DEL: `email` lets them through, but no mailbox has them, and a
# NUL or an escape sent to the server does nobody any good.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class SendError(Exception):
    """The message was not accepted; the text is safe to store (no address, no password)."""


class BuildError(Exception):
    """The outbox row cannot become a message, whichever server is asked: retrying cannot help.
    The text is safe to store (it never quotes the address)."""


def check_sender(sender: str) -> None:
    """BuildError when MAIL_FROM cannot head a message: a setting to fix, not a fault of any row."""
    try:
        EmailMessage()["From"] = sender
    except Exception as exc:  # whatever `email` refuses in the setting
        raise BuildError(f"the e-mail package refused it ({type(exc).__name__})") from exc


def _check_recipient(address: str | None) -> None:
    """Refuse, in words that do not quote it, an address no message can carry."""
    if not address:
        raise BuildError("it has no recipient address (erased with the customer's data)")
    if LINE_BREAK.search(address):
        raise BuildError("the recipient address contains a line break")
    if CONTROL.search(address):
        raise BuildError("the recipient address contains a control character")


def build_message(mail: Any, sender: str) -> EmailMessage:
    """The row as a message, or BuildError: a fault of the row's content, so retrying would not help.

    Checked before `email` sees the address (its own errors may quote it); what `email` still
    refuses (its address parser raises even IndexError on some inputs) becomes a BuildError too.
    The message is written out once here, so that no refusal is left for the transport to meet.
    """
    _check_recipient(mail.to_address)
    try:
        message = _message(mail, sender)
        bytes(message)
        return message
    except Exception as exc:  # only building here: sending comes later, and its errors are SendError
        raise BuildError(f"the e-mail package refused it ({type(exc).__name__})") from exc


def _message(mail: Any, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    # The same id on every attempt: a resent copy (crash after the server accepted) is folded by clients.
    # The row's id and key; a row written before the keys (0007) has the key "order-<id>.<kind>", so
    # its Message-ID is the one it had then ("<mail-5.order-12.order_confirmed@shop.invalid>").
    message["Message-ID"] = f"<mail-{mail.id}.{mail.dedup_key}@shop.invalid>"
    message.set_content(mail.body)
    return message


@dataclass
class Mailbox:
    smtp: dict[str, Any] | None
    folder: Path

    @classmethod
    def from_config(cls, config: Any, instance_path: str) -> Mailbox:
        return cls(config["MAIL_SMTP"], mail_folder(config, instance_path))

    def send(self, mail: Any, message: EmailMessage) -> str | None:
        """Deliver one outbox row as `build_message` made it; the file name when written to the
        development folder. SendError when it was not accepted (worth retrying later)."""
        if self.smtp is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{mail.id:06d}-{mail.kind}.eml"
            # Written aside, then renamed: whoever watches the folder never opens a half-written mail.
            partial = self.folder / f".{name}.partial"
            partial.write_bytes(bytes(message))
            partial.replace(self.folder / name)
            return name
        try:
            _send_smtp(self.smtp, message)
        except smtplib.SMTPRecipientsRefused:
            raise SendError("SMTPRecipientsRefused: the server refused the recipient") from None
        except smtplib.SMTPResponseException as exc:
            # Only the code: the server's text often quotes the address.
            raise SendError(f"{type(exc).__name__}: the server answered {exc.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}"[:300]) from None
        return None


def _send_smtp(settings: dict[str, Any], message: EmailMessage) -> None:
    if settings["ssl"]:
        server: smtplib.SMTP = smtplib.SMTP_SSL(
            settings["host"], settings["port"], timeout=SMTP_TIMEOUT, context=ssl.create_default_context()
        )
    else:
        server = smtplib.SMTP(settings["host"], settings["port"], timeout=SMTP_TIMEOUT)
    with server:
        if settings["starttls"]:
            server.starttls(context=ssl.create_default_context())
        if settings["username"]:
            server.login(settings["username"], settings["password"] or "")
        server.send_message(message)
