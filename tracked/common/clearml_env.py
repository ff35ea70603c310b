"""Is a ClearML server configured, and does it answer? Asked without ClearML's own hour-long retries."""

from __future__ import annotations

import os


def server_configured() -> bool:
    """Whether ClearML has credentials (env vars or clearml.conf), as ClearML itself decides."""
    from clearml.backend_api.session.defs import ENV_ACCESS_KEY, ENV_AUTH_TOKEN, ENV_SECRET_KEY
    from clearml.config import config_obj

    if ENV_AUTH_TOKEN.get() or ENV_ACCESS_KEY.get() or ENV_SECRET_KEY.get():
        return True
    return bool(
        config_obj.get("api.credentials.access_key", None) or config_obj.get("api.credentials.secret_key", None)
    )


def server_unreachable(timeout: float) -> str | None:
    """Why the configured server cannot be used, or None when its API answers within ``timeout`` seconds.

    ClearML itself retries an unreachable server for hours. A server that
    answers ``debug.ping`` can still leave every API call unanswered, so the
    probe is a login with the configured credentials: any HTTP answer (even
    an error status) means the API is there.
    """
    import base64
    import urllib.error
    import urllib.request

    from clearml.backend_api.session.defs import ENV_ACCESS_KEY, ENV_AUTH_TOKEN, ENV_HOST, ENV_SECRET_KEY
    from clearml.backend_api.session.session import Session
    from clearml.config import config_obj

    # The same order ClearML uses, down to its default: the hosted service.
    host = ENV_HOST.get() or config_obj.get("api.api_server", None) or config_obj.get("api.host", None)
    host = str(host or Session.default_host).rstrip("/")
    token = ENV_AUTH_TOKEN.get()
    access = ENV_ACCESS_KEY.get() or config_obj.get("api.credentials.access_key", None)
    secret = ENV_SECRET_KEY.get() or config_obj.get("api.credentials.secret_key", None)
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif access and secret:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{access}:{secret}".encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{host}/auth.login", headers=headers), timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"did not answer at {host} within {timeout:g} s ({reason})"


def clearml_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("CLEARML_", "TRAINS_"))}


def restore_clearml_environ(before: dict[str, str]) -> None:
    # Task.init leaves CLEARML_OFFLINE_MODE and CLEARML_PROC_MASTER_ID behind;
    # a child process inheriting them takes itself for part of a closed task.
    for key in clearml_environ().keys() - before.keys():
        del os.environ[key]
    os.environ.update(before)
