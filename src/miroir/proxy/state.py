"""The per-app state handlers reach through `proxy_state()`: the cluster, config, metrics,
the running background services and the API keys.

Owns nothing but the lookup, so route modules need not import the app factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from quart import current_app

if TYPE_CHECKING:
    from miroir.cluster.keys import KeyRing
    from miroir.cluster.runtime import Cluster
    from miroir.cluster.services import RunningServices
    from miroir.config import MiroirConfig
    from miroir.proxy.metrics import Metrics


@attrs.define
class ProxyState:
    config: MiroirConfig
    metrics: Metrics
    cluster: Cluster | None = None
    services: RunningServices | None = None
    keyring: KeyRing | None = None  # the API keys (set when serving starts)


def proxy_state() -> ProxyState:
    return current_app.extensions["miroir"]


def cluster() -> Cluster:
    found = proxy_state().cluster
    if found is None:
        raise RuntimeError("the proxy is not serving yet (before_serving has not run)")
    return found
