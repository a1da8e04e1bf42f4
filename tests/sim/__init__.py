"""Tests of the cluster simulator (miroir.sim)."""
