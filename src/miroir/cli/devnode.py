"""`miroir devnode`: run one Meilisearch-compatible devnode (pure Python) under hypercorn."""

from __future__ import annotations

import argparse
import os

import trio

from miroir.devnode.app import DEFAULT_PAYLOAD_LIMIT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devnode", help="run a Meilisearch-compatible devnode (for tests and `miroir dev`)"
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7700,
                        help="port to listen on (default 7700, as Meilisearch; 0 = any free port)")
    parser.add_argument(
        "--master-key",
        default=os.environ.get("MEILI_MASTER_KEY"),
        help="require `Authorization: Bearer <key>` (default: $MEILI_MASTER_KEY; none = open)",
    )
    parser.add_argument(
        "--http-payload-size-limit",
        type=int,
        default=DEFAULT_PAYLOAD_LIMIT,
        help="largest request body in bytes (default 100 MB, as Meilisearch)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from miroir.devnode.serve import run_devnode_forever

    try:
        trio.run(
            run_devnode_forever,
            args.host,
            args.port,
            args.master_key or None,
            args.http_payload_size_limit,
        )
    except KeyboardInterrupt:
        pass
    return 0
