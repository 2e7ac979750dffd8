"""Reconciliation with Clerk's Backend API: the logic (service.py) and `flask sync-clerk` (cli.py)."""
