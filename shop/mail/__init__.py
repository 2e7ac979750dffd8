"""Order e-mails: the outbox (`outbox.py`), the SMTP or file transport (`transport.py`), and
`flask mail send-pending` (`cli.py`)."""
