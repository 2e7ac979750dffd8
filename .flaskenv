# Flask's own settings for the `flask` command. Secrets and Clerk keys go in .env (see .env.example).
FLASK_APP=wsgi
FLASK_DEBUG=1
# Without Clerk keys in .env, `make run` signs in through the local Clerk stand-in.
SHOP_DEV_AUTH=auto
