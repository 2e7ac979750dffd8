"""Deployment files: nginx in front of gunicorn (`make serve-proxy`); see docs/deploying.md."""
