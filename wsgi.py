"""Entry point for `flask` (FLASK_APP=wsgi) and `gunicorn wsgi:app`."""

import sys

from dotenv import load_dotenv

load_dotenv()  # gunicorn does not read .env; `flask` already has, and this changes nothing then

from shop import ConfigError, create_app  # noqa: E402

try:
    app = create_app()
except ConfigError as exc:
    sys.exit("The shop cannot start:\n- " + "\n- ".join(exc.problems))
