"""Miroir: make a fleet of unmodified Meilisearch nodes look like one Meilisearch."""

__version__ = "0.1.0"
