"""Trio orchestration over core + transport: scatter/gather, quorum writes, races, health."""
