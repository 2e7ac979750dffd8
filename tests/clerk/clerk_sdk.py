"""Run Clerk's own `@clerk/backend` (node_modules, pinned by package-lock.json) as an oracle for our checks."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

ROOT = Path(__file__).resolve().parents[2]
ORACLE = Path(__file__).parent / "js" / "clerk_oracle.mjs"
BACKEND = ROOT / "node_modules" / "@clerk" / "backend" / "package.json"


def require_clerk_backend() -> None:
    """Skip, loudly, when node or the npm packages are missing (`make test` runs `npm ci`)."""
    if shutil.which("node") is None or not BACKEND.exists():
        pytest.skip(
            "SKIPPED: Clerk's @clerk/backend cannot run (node or node_modules/@clerk/backend missing); "
            "install Node.js 20+ and run `make install-npm` (npm ci) to compare our checks with Clerk's."
        )


def run_oracle(job: dict[str, Any]) -> list[dict[str, Any]]:
    require_clerk_backend()
    finished = subprocess.run(
        ["node", str(ORACLE)], input=json.dumps(job), capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(private_key: Any, header: Any, claims: Any, hash_algorithm: Any = None) -> str:
    """A JWT with exactly this header and these claims (any JSON), RSA-signed (PKCS#1 v1.5)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hash_algorithm or hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"
