"""E-mails: the outbox (`outbox.py`, `models.py`), the SMTP or file transport (`transport.py`), and
`flask mail send-pending` (`cli.py`). Generic: whoever writes a mail renders it (the order's, the store
in shop/store/order_mail.py); nothing here imports the store."""
