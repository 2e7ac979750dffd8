# Flask's own settings for the `flask` command. Secrets and Clerk keys go in .env (see .env.example).
FLASK_APP=wsgi
FLASK_DEBUG=1
