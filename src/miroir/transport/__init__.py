"""The one seam between Miroir and its nodes: `await transport.request(...) -> NodeResponse`.

`base` holds the protocol, the answer type and the failure taxonomy; `http` the production
client; `fake` a scripted transport for tests. Nothing here knows about shards or quorum.
"""

from miroir.transport.base import (
    FailureKind,
    NodeProtocolError,
    NodeRefused,
    NodeReset,
    NodeResponse,
    NodeResult,
    NodeTimeout,
    Outcome,
    Transport,
    TransportError,
    UnknownNode,
    classify,
    error_for_kind,
    failure_kind,
    is_node_failure,
)

__all__ = [
    "FailureKind",
    "NodeProtocolError",
    "NodeRefused",
    "NodeReset",
    "NodeResponse",
    "NodeResult",
    "NodeTimeout",
    "Outcome",
    "Transport",
    "TransportError",
    "UnknownNode",
    "classify",
    "error_for_kind",
    "failure_kind",
    "is_node_failure",
]
