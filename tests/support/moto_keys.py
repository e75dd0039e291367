"""One import of moto's cognito-idp signing key for every pool the tests build.

Every moto user pool imports the same bundled RSA key, 0.1-0.3 s each; the
suite builds about ninety pools in process, and sharing one import saves about
15 s of its run time (measured: 2:14 with, 2:30 without). A run or ``serve``
builds one pool, so migrate.sandbox goes without this.

Internal: the ``jwk`` global of ``moto.cognitoidp.models`` (joserfc's module),
replaced by a stand-in whose ``RSAKey.import_key`` remembers what it imported.
The key, and so every token, is the same as without it. Named by
tests/functional/test_sandbox.py::test_moto_internal_jwk_global_is_wrapped_to_import_the_key_once.
"""

from __future__ import annotations

import json
import threading
from typing import Any


class _KeyCachingRSAKey:
    """``joserfc.jwk.RSAKey`` whose ``import_key`` remembers the keys it imported."""

    def __init__(self, rsa_key: Any) -> None:
        self._rsa_key = rsa_key
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def import_key(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or not isinstance(data, dict):
            return self._rsa_key.import_key(data, *args, **kwargs)
        fingerprint = json.dumps(data, sort_keys=True)
        with self._lock:
            if fingerprint not in self._keys:
                self._keys[fingerprint] = self._rsa_key.import_key(data)
            return self._keys[fingerprint]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rsa_key, name)


class KeyCachingJwk:
    """Stands in for the ``joserfc.jwk`` module inside moto's cognito-idp models."""

    def __init__(self, jwk: Any) -> None:
        self._jwk = jwk
        self.RSAKey = _KeyCachingRSAKey(jwk.RSAKey)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._jwk, name)


def share_moto_signing_key() -> None:
    """Make every moto pool share one import of the key (idempotent)."""
    try:
        import moto.cognitoidp.models as models
    except ImportError:  # no moto, no pools: the sandbox tests say so
        return
    namespace = vars(models)
    if not isinstance(namespace.get("jwk"), KeyCachingJwk):
        namespace["jwk"] = KeyCachingJwk(namespace["jwk"])
