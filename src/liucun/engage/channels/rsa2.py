"""RSA2 as Alipay uses it: RSASSA-PKCS1-v1_5 signatures with SHA-256 (RFC 8017, 8.2), through
the `cryptography` package, over keys as Alipay's console hands them out: PEM, or bare base64
DER (PKCS#8 or PKCS#1 private keys; SubjectPublicKeyInfo or PKCS#1 public keys).

tests/test_engage_channels.py checks it against the `openssl` command line both ways.
"""

from __future__ import annotations

import base64
import re

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PrivateKey = rsa.RSAPrivateKey
PublicKey = rsa.RSAPublicKey

_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.S)


class RSAKeyError(ValueError):
    """The text is not an RSA key this module reads."""


def _der(text: str) -> bytes:
    """The DER bytes of a PEM block, or of bare base64."""
    found = _PEM.search(text)
    body = found.group(2) if found else text
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except ValueError:
        raise RSAKeyError("not base64 / PEM") from None


def load_private_key(text: str) -> PrivateKey:
    try:
        key = serialization.load_der_private_key(_der(text), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise RSAKeyError("not an RSA private key (PKCS#8 or PKCS#1, unencrypted)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise RSAKeyError("not an RSA key")
    return key


def load_public_key(text: str) -> PublicKey:
    der = _der(text)
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        try:  # PKCS#1 "RSA PUBLIC KEY"
            key = serialization.load_pem_public_key(
                b"-----BEGIN RSA PUBLIC KEY-----\n"
                + base64.encodebytes(der)
                + b"-----END RSA PUBLIC KEY-----\n"
            )
        except (ValueError, UnsupportedAlgorithm):
            raise RSAKeyError("not an RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise RSAKeyError("not an RSA key")
    return key


def sign(message: bytes, key: PrivateKey) -> bytes:
    """RSASSA-PKCS1-v1_5-SIGN with SHA-256."""
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def verify(message: bytes, signature: bytes, key: PublicKey) -> bool:
    """RSASSA-PKCS1-v1_5-VERIFY with SHA-256."""
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
