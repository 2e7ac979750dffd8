"""Development tools that play the shop's outside world on a laptop and in tests; never part of production.

- `clerk_standin/`: the local Clerk (SHOP_DEV_AUTH): session tokens, JWKS, the Backend API calls the
  shop makes, the handshake, signed webhooks, over real HTTP under `/dev-clerk`.
- `stripe_standin/`: the local Stripe (SHOP_DEV_STRIPE): the API the `stripe` library calls, a hosted
  checkout page and signed events, under `/dev-stripe`.
- `embedded_postgres.py`: the pgserver-backed PostgreSQL used when DATABASE_URL is unset;
  `python -m devtools.embedded_postgres stop` (what `make stop` runs) stops it.

These import from `shop`; `shop` imports them only inside branches that run while one is on
(`shop.create_app` registers each when its setting asks for it; `shop.auth.session` asks the Clerk
stand-in for its issuer and Backend API while SHOP_DEV_AUTH is on). Production refuses those
settings and requires DATABASE_URL, so it never imports this package (tests/test_devtools_isolation.py).
"""
