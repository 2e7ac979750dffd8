"""The stand-in's RSA key: made once, kept in instance/dev-clerk/, published as a JWKS."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@lru_cache(maxsize=16)
def _private_key(private_pem: str) -> Any:
    """The key object of a PEM, parsed once: parsing (it checks the RSA key) took 33 ms, paid on every
    token minted and every JWKS served. A handful of PEMs at most: one a stand-in folder."""
    return serialization.load_pem_private_key(private_pem.encode(), password=None)


def public_key_pem(private_pem: str) -> str:
    return (
        _private_key(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwks(private_pem: str, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_private_key(private_pem).public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}


def mint(private_pem: str, kid: str, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, _private_key(private_pem), algorithm="RS256", headers={"kid": kid})
