"""Keyed pseudonyms for identity codes and DVV family ids.

HMAC-SHA256 under a secret key, truncated to 128 bits: stable for a key, so joins
work across registers, and not reversible or re-computable without the key. Person and
family ids are hashed in separate domains so the two can never collide.

Examples
--------
>>> p = Pseudonymiser(b"0123456789abcdef-test-key")
>>> a = p.person("131052-308T")
>>> len(a), a == p.person("131052-308T"), a == p.family("131052-308T")
(32, True, False)
"""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymiser:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("pseudonymisation key must be at least 16 bytes")
        self._person = hmac.new(key, b"person:", hashlib.sha256)
        self._family = hmac.new(key, b"family:", hashlib.sha256)

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(<key>)"

    @staticmethod
    def _digest(prefix: hmac.HMAC, value: str) -> str:
        h = prefix.copy()
        h.update(value.encode("utf-8"))
        return h.hexdigest()[:32]

    def person(self, code: str) -> str:
        return self._digest(self._person, code)

    def family(self, family_id: str) -> str:
        return self._digest(self._family, family_id)

    def event(self, event: dict) -> dict:
        """A validated event with ``person`` and ``data.family`` replaced (a new dict)."""
        out = dict(event)
        if out.get("person") is not None:
            out["person"] = self.person(out["person"])
        data = out.get("data")
        if data and "family" in data:
            out["data"] = {**data, "family": self.family(data["family"])}
        return out
