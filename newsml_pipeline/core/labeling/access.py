"""Who answers on the labelling page: per-labeller tokens, checked on every request.

Trusted labels decide which model the gate deploys, so off loopback the page only takes answers
from a labeller it can name. `NEWSML_LABEL_TOKENS` lists them as `name:token` pairs, comma
separated (`alice:3f9c…,bob:81d2…`; make tokens with `python -c "import secrets;
print(secrets.token_urlsafe(24))"`). Browsers send them as HTTP Basic credentials (user name =
labeller, password = token): the page asks once, the browser repeats them on every call. The
labeller an answer is stored under is the name whose token matched, never a name the request
chose.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping

TOKENS_ENV = "NEWSML_LABEL_TOKENS"
MIN_TOKEN_CHARS = 16


def parse_tokens(value: str) -> dict[str, str]:
    """`name:token,name:token` → {name: token}; ValueError names the bad entry (never the token)."""
    tokens: dict[str, str] = {}
    for n, entry in enumerate(value.split(","), start=1):
        if not entry.strip():
            continue
        name, sep, token = entry.strip().partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token:
            raise ValueError(f"{TOKENS_ENV} entry {n} is not name:token")
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"{TOKENS_ENV}: the token of {name!r} is shorter than {MIN_TOKEN_CHARS} characters"
            )
        if name in tokens:
            raise ValueError(f"{TOKENS_ENV}: {name!r} is listed twice")
        tokens[name] = token
    return tokens


def tokens_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The configured labellers ({} = none: the page is open, so only loopback may serve it)."""
    env = os.environ if environ is None else environ
    return parse_tokens(env.get(TOKENS_ENV, ""))


def verified_labeller(authorization: str | None, tokens: Mapping[str, str]) -> str | None:
    """The labeller whose token an `Authorization: Basic …` header carries, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, sep, token = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = tokens.get(name)
    # compare_digest on bytes: constant time whatever the token, and an unknown name costs the same.
    ok = hmac.compare_digest(token.encode(), (expected or "\0" * MIN_TOKEN_CHARS).encode())
    return name if sep and expected is not None and ok else None
