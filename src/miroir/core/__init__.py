"""The pure core of Miroir.

Owns placement, topology, quorum accounting, merging, filter parsing and task aggregation.
It must never import trio, sockets, clocks or any outer Miroir layer: time is passed in,
and every function here is deterministic so hypothesis can specify it.
"""
