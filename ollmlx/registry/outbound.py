"""How ollmlx reaches registries: the way Ollama's Go client does, from the environment.

- `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` choose a proxy per request (spec §22 lists them among
  the server's variables); like Go's ProxyFromEnvironment, loopback hosts never go through one.
- `SSL_CERT_FILE` / `SSL_CERT_DIR` replace the trusted roots, as they do for Go on Linux: the way
  to reach a private registry with its own CA.

httpx reads all of these with trust_env; the loopback exemption is the one rule it lacks.
"""

from __future__ import annotations

from typing import Any

LOOPBACK = ("all://localhost", "all://127.0.0.1", "all://[::1]")


def client_options() -> dict[str, Any]:
    """Keyword arguments for an httpx client that talks to registries and their blob stores."""
    return {"trust_env": True, "mounts": {pattern: None for pattern in LOOPBACK}}
