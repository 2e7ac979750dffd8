"""Where an e-mail goes: an SMTP server (smtplib), or in development a file under instance/mail/."""

from __future__ import annotations

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


class SendError(Exception):
    """The message was not accepted; the text is safe to store (no address, no password)."""


def build_message(mail: Any, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    # The same id on every attempt: a resent copy (crash after the server accepted) is folded by clients.
    message["Message-ID"] = f"<mail-{mail.id}.order-{mail.order_id}.{mail.kind}@shop.invalid>"
    message.set_content(mail.body)
    return message


@dataclass
class Mailbox:
    smtp: dict[str, Any] | None
    folder: Path

    @classmethod
    def from_config(cls, config: Any, instance_path: str) -> Mailbox:
        return cls(config["MAIL_SMTP"], mail_folder(config, instance_path))

    def send(self, mail: Any, *, sender: str) -> str | None:
        """Deliver one outbox row; the file name when written to the development folder."""
        message = build_message(mail, sender)
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
