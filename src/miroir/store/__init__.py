"""Durable state shared by proxy processes: tasks, idempotency keys, settings versions, leases."""
