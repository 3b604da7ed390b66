"""Registry bearer tokens (spec §17; Ollama's server/auth.go, auth/auth.go).

A registry that answers 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…` is asked for
a token at its realm. Like Ollama, the token request is signed with the user's ed25519 key
(`<home>/id_ed25519`, OpenSSH format) when one exists: `Authorization: <pubkey-b64>:<sig-b64>` over
`GET,<url>,<base64(hex(sha256("")))>`. The realm must be on the registry's own host, so a token is
never sent across origins.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from ollmlx import config


@dataclass
class Challenge:
    realm: str
    service: str
    scope: str


def _value(header: str, key: str) -> str:
    # Ollama's getValue: the quoted value after key=, allowing quotes not followed by a comma
    start = header.find(key + "=")
    if start < 0:
        return ""
    start += len(key) + 2
    end = start
    while end < len(header):
        if header[end] == '"' and (end + 1 >= len(header) or header[end + 1] == ","):
            break
        end += 1
    return header[start:end]


def parse_challenge(header: str) -> Challenge:
    header = header.removeprefix("Bearer ")
    return Challenge(_value(header, "realm"), _value(header, "service"), _value(header, "scope"))


def token_url(ch: Challenge) -> str:
    query = [("service", ch.service), *(("scope", s) for s in ch.scope.split(" ")),
             ("ts", str(int(time.time()))), ("nonce", base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode())]
    sep = "&" if "?" in ch.realm else "?"
    return ch.realm + sep + urlencode(query)


def check_realm(ch: Challenge, registry_host: str) -> None:
    realm_host = urlsplit(ch.realm).netloc
    if realm_host != registry_host:
        raise ValueError(f'realm host "{realm_host}" does not match original host "{registry_host}"')


def key_paths() -> list[Path]:
    return [config.home_dir() / "id_ed25519", Path.home() / ".ollama" / "id_ed25519"]


def sign(data: bytes) -> str | None:
    """`<pubkey>:<signature>` with the first ed25519 key found, or None when there is none."""
    for path in key_paths():
        if path.is_file():
            break
    else:
        return None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        return None
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    pub_b64 = pub.split(b" ")[1].decode()
    # the SSH signature blob of an ed25519 key is the raw 64-byte signature
    return f"{pub_b64}:{base64.b64encode(key.sign(data)).decode()}"


def token_request_auth(url: str) -> str | None:
    empty = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
    return sign(f"GET,{url},{empty}".encode())


__all__ = ["Challenge", "check_realm", "parse_challenge", "sign", "token_request_auth", "token_url"]
