"""The HTTP proxy: a Quart-trio app that looks like one Meilisearch. See `app.create_app`."""

from miroir.proxy.app import create_app

__all__ = ["create_app"]
