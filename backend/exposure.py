"""Is the Prefect API a run talks to open to anyone who can reach it?

With the network on (the default), the agents' sandbox reaches the host's loopback and whatever
the host reaches. A Prefect API that answers without a credential then gives every agent the
Secret blocks (the Anthropic key), the run states and deployments a worker runs on the host
(issue 13). plan-executor's own server requires a credential; a server named by the user's
PREFECT_API_URL may not, and the run says so at its start and in its report.
"""

from __future__ import annotations

import urllib.error
import urllib.request

PROBE_PATH = "/admin/version"
"""The UI's own login check: any route but the health checks needs the credential."""


def api_is_open(api_url: str, *, timeout_s: float = 3.0) -> bool:
    """The API answers a request without any credential (an unreachable API is not open)."""
    request = urllib.request.Request(api_url.rstrip("/") + PROBE_PATH, method="GET")
    # no proxies: the question is what the agents (on this machine) reach directly
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def open_api_warning(api_url: str) -> str:
    return (
        f"the Prefect API at {api_url} answers without authentication and the agents' "
        "sandbox has the network: an agent can read its Secret blocks (the Anthropic API key), "
        "change run states and create deployments that a worker runs on its host. Use "
        "`plan-executor server start` (it requires a credential), set "
        "PREFECT_SERVER_API_AUTH_STRING on that server, or run with --no-network."
    )


__all__ = ["api_is_open", "open_api_warning"]
