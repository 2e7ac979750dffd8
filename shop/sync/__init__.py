"""Reconciliation with Clerk's Backend API: the listing (listing.py), the sync (reconcile.py), the drift check
(drift.py) and `flask sync-clerk` (cli.py); one user at a time goes through shop.clerk_user."""
