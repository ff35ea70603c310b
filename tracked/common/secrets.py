"""Keeping credentials out of everything tracked writes.

Two rules: a parameter whose name looks secret is recorded as
``<redacted>``; and any text tracked writes (console, warnings, files,
hyperparameters) has the ClearML credentials of the environment and of
clearml.conf replaced by ``<redacted>``.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

REDACTED = "<redacted>"
_SECRET_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "pwd", "pw", "pass", "passphrase", "credential", "cred", "auth",
     "authorization", "key", "apikey", "cookie", "private", "signature", "bearer", "jwt", "dsn", "webhook",
     "sessionid", "certificate", "cert", "salt", "otp", "pin"}
)  # fmt: skip
#: A count of tokens or keys is no secret (``max_tokens``, ``num_keys``).
_COUNTS = frozenset({"max", "min", "num", "n", "count", "total", "limit", "per", "len", "length", "size", "top"})
#: Words that end in "key" and are no key.
_NOT_KEYS = frozenset({"monkey", "donkey", "turkey", "hockey", "jockey", "whiskey", "hotkey"})
#: Word pairs that name a secret together (``database_url``, ``connection_string``).
_SECRET_PAIRS = frozenset(
    {("database", "url"), ("db", "url"), ("connection", "string"), ("conn", "str"), ("session", "id")}
)
#: Endings that mark a secret in a name written as one word (``hftoken``, ``openaikey``, ``dbpassword``).
_SECRET_ENDINGS = ("token", "tokens", "secret", "secrets", "password", "passwords", "apikey", "apikeys", "key", "keys")
#: ``scheme://user:PASSWORD@host``: the password part of a URL or connection string.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)[^@\s/]+(?=@)")
_CREDENTIAL_ENV = (
    "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY", "CLEARML_AUTH_TOKEN",
    "TRAINS_API_ACCESS_KEY", "TRAINS_API_SECRET_KEY",
)  # fmt: skip


def looks_secret(name: str) -> bool:
    """True for names like api_key, hfToken, DB_PASSWORD, auth_header, clientSecret, secrets, creds,
    openaikey, database_url, session_id: by their parts, case and separators ignored, plurals too."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]
    singular = [w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words]
    if _COUNTS.intersection(words):
        return False
    if any(word in _SECRET_WORDS for word in (*words, *singular)):
        return True
    if any(pair in _SECRET_PAIRS for pair in itertools.pairwise(singular)):
        return True
    joined = "".join(words)
    return (joined.endswith(_SECRET_ENDINGS) and joined not in _NOT_KEYS) or "apikey" in joined


def without_url_passwords(text: str) -> str:
    """``https://user:PASS@host/db`` -> ``https://user:<redacted>@host/db``."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


def credentials() -> list[str]:
    """ClearML credentials this process knows of: environment first, clearml.conf if ClearML is loaded."""
    found = [os.environ[name] for name in _CREDENTIAL_ENV if os.environ.get(name)]
    if "clearml.config" in sys.modules:
        try:
            from clearml.config import config_obj

            for key in ("api.credentials.access_key", "api.credentials.secret_key"):
                value = config_obj.get(key, None)
                if value:
                    found.append(str(value))
        except Exception:  # noqa: BLE001 - no config, nothing to hide
            pass
    # Very short values would redact ordinary words; real keys are long.
    return sorted({v for v in found if len(v) >= 6}, key=len, reverse=True)


def scrub(text: str) -> str:
    return scrubber()(text)


def scrubber() -> Callable[[str], str]:
    """``scrub`` with the credentials looked up once, for text written in bulk (every example's details)."""
    secrets = credentials()
    if not secrets:
        return unchanged

    def scrub_known(text: str) -> str:
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    return scrub_known


def unchanged(text: str) -> str:
    """What ``scrubber`` gives when no credentials are known: the text as it is."""
    return text


def scrub_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with credentials redacted from its text columns and its column names (the frame
    itself when none are known)."""
    from pandas.api.types import is_numeric_dtype

    secrets = credentials()
    if not secrets:
        return frame
    renamed = {name: scrub(name) for name in frame.columns if isinstance(name, str) and scrub(name) != name}
    text_columns = [name for name in frame.columns if not is_numeric_dtype(frame[name])]
    if not text_columns and not renamed:
        return frame
    frame = frame.copy()
    for name in text_columns:
        frame[name] = frame[name].map(lambda value: scrub(value) if isinstance(value, str) else value)
    return frame.rename(columns=renamed) if renamed else frame
