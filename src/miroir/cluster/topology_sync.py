"""Every proxy process follows the live topology in the store: seeding, adopting, publishing.

Theory of operation. The topology (membership, addresses, S, RF, RG, membership states) is one
versioned record in the store (`miroir.core.topology_record`); its version is the epoch.
- `load_or_seed` runs when a process starts, before it serves: it reads the record, or puts the
  config's topology as epoch 1 when there is none. Two processes starting together race on a
  compare-and-set; the loser reads the winner's record. Once a record exists the config's node
  list is only a seed: the store wins, and a difference is logged (`miroir.topology`), since
  membership changes go through the admin API, not the config file.
- `TopologyFollower` (a background service started by `run_services`) reads the record every
  `interval_s` (the health interval in production) and hands a newer epoch to
  `Cluster.adopt_epoch`; so a change made through one process is in force in every process
  within one interval, plus a store round trip.
- `publish` is the one way to change the topology: compare-and-set from the epoch the caller
  read, then adopt it locally at once (the caller's process needs no interval to see its own
  change). A lost race returns None: read again and decide again.
- `announce`: every process records in the store which epoch (and which version of the index
  layouts, `lagging_layouts`: a reshard's mirrors and flip) it routes by (a process record,
  `Store.put_process_record`, live for `process_ttl_ms`): at start, after every follower check,
  and forgotten at a clean stop. `lagging` reads them: the live processes still behind an
  epoch. The rebalancer copies nothing until no live process lags behind the migration's
  epoch (every one dual-writes), and deletes nothing until none lags behind the cutover's.
  A process that stops beating (dead, or cut off from the store) stops counting once its
  record lapses; one cut off from the store also stops following, which is why the record's
  life is a few follow intervals, not more (docs/operations.md, "Changing the fleet").

Must never: write a health state into the record (`encode_topology` refuses), or change the
topology without a compare-and-set on the epoch.
"""

from __future__ import annotations

import logging

import trio

from miroir.cluster.runtime import Cluster
from miroir.core.migration_map import Migration
from miroir.core.topology import Topology
from miroir.core.topology_record import (
    TOPOLOGY_RECORD,
    EpochTopology,
    RecordError,
    decode_migration,
    decode_topology,
    encode_topology,
    seed_topology,
)
from miroir.store.base import Store, StoreError

logger = logging.getLogger("miroir.topology")


async def read_topology(store: Store) -> EpochTopology | None:
    """The stored topology and its epoch; None when none was ever stored."""
    record = await store.get_record(TOPOLOGY_RECORD)
    if record is None:
        return None
    return EpochTopology(record.version, decode_topology(record.value),
                         decode_migration(record.value))


async def load_or_seed(store: Store, config_topology: Topology) -> EpochTopology:
    """The topology to start under: the stored one, or the config's stored as epoch 1."""
    for _ in range(3):
        found = await read_topology(store)
        if found is None:
            seeded = await store.put_record_if(
                TOPOLOGY_RECORD, 0, encode_topology(seed_topology(config_topology)))
            if seeded is None:
                continue  # another process seeded it first: read theirs
            logger.info("topology seeded from the config at epoch %d", seeded.version)
            return EpochTopology(seeded.version, decode_topology(seeded.value))
        _log_config_difference(found, config_topology)
        return found
    raise StoreError("the topology record kept changing while it was being seeded")


async def publish(
    cluster: Cluster, expected_epoch: int, topology: Topology, migration: Migration | None = None
) -> EpochTopology | None:
    """Store `topology` (membership states only) and the migration in progress as epoch
    `expected_epoch + 1` if the stored epoch is still `expected_epoch`, and adopt it in this
    process. None when another writer changed the topology first."""
    record = await cluster.store.put_record_if(
        TOPOLOGY_RECORD, expected_epoch, encode_topology(topology, migration))
    if record is None:
        return None
    adopted = EpochTopology(record.version, topology, migration)
    cluster.adopt_epoch(adopted.epoch, adopted.topology, adopted.migration)
    return adopted


def process_ttl_ms(interval_s: float) -> int:
    """How long a process record lives: three follow intervals (two missed beats are tolerated),
    at least three seconds."""
    return max(3000, int(3 * interval_s * 1000))


async def announce(cluster: Cluster, ttl_ms: int) -> bool:
    """Record the epoch this process routes by; False (logged) when the store failed."""
    migration = cluster.migration
    value = {"epoch": cluster.epoch, "migration": None if migration is None else migration.id,
             "layouts": cluster.layouts.version, "seenAtMs": cluster.now_ms()}
    try:
        await cluster.store.put_process_record(cluster.process_id, value, cluster.now_ms(), ttl_ms)
    except StoreError as exc:
        logger.warning("could not record this process's epoch in the store: %s", exc)
        return False
    return True


async def lagging(cluster: Cluster, epoch: int) -> dict[str, int]:
    """The live processes (by id) that route by an epoch older than `epoch`, with theirs. This
    process counts by its own epoch, whatever its record says."""
    found = await cluster.store.list_live_processes(cluster.now_ms())
    behind = {pid: int(value.get("epoch", 0)) for pid, value in found.items()
              if pid != cluster.process_id and int(value.get("epoch", 0)) < epoch}
    if cluster.epoch < epoch:
        behind[cluster.process_id] = cluster.epoch
    return behind


async def lagging_layouts(cluster: Cluster, version: int) -> dict[str, int]:
    """The live processes (by id) whose index layouts are older than `version` (a reshard's
    mirror or flip), with theirs; like `lagging` for epochs."""
    found = await cluster.store.list_live_processes(cluster.now_ms())
    behind = {pid: int(value.get("layouts", 0)) for pid, value in found.items()
              if pid != cluster.process_id and int(value.get("layouts", 0)) < version}
    if cluster.layouts.version < version:
        behind[cluster.process_id] = cluster.layouts.version
    return behind


class TopologyFollower:
    """Adopt every newer epoch of the stored topology, checking every `interval_s`. A process
    that could not reach the store when it started (epoch 0, routing by the config) seeds or
    loads the record on its first successful check."""

    def __init__(self, cluster: Cluster, interval_s: float) -> None:
        self.cluster = cluster
        self.interval_s = interval_s
        self.ttl_ms = process_ttl_ms(interval_s)
        self.checks = 0
        # What a process still at epoch 0 seeds the store with: the topology it started with.
        self._seed = seed_topology(cluster.topology)

    async def run(self) -> None:
        while True:
            await self.check_once()
            try:
                # The layouts too (a reshard waits until every process routes with its mirror).
                await self.cluster.layouts.current()
            except StoreError as exc:
                logger.warning("could not read the index layouts: %s", exc)
            await announce(self.cluster, self.ttl_ms)
            await trio.sleep(self.interval_s)

    async def check_once(self) -> bool:
        """Read the record once; True if a newer epoch was adopted. A store failure or a record
        this version cannot read is logged and leaves the epoch in force (the next check
        retries): routing by a known topology beats stopping."""
        self.checks += 1
        try:
            if self.cluster.epoch == 0:
                found = await load_or_seed(self.cluster.store, self._seed)
            else:
                found = await read_topology(self.cluster.store)
        except (StoreError, RecordError) as exc:
            logger.warning("could not read the topology from the store: %s", exc)
            return False
        if found is None:
            return False
        return self.cluster.adopt_epoch(found.epoch, found.topology, found.migration)


def _log_config_difference(found: EpochTopology, config_topology: Topology) -> None:
    stored = found.topology
    differences = []
    for name in ("shards", "replication_factor", "replica_groups"):
        if getattr(stored, name) != getattr(config_topology, name):
            differences.append(f"{name} {getattr(config_topology, name)} in the config, "
                               f"{getattr(stored, name)} in the store")
    config_nodes = {(n.id, n.address, n.replica_group) for n in config_topology.nodes}
    stored_nodes = {(n.id, n.address, n.replica_group) for n in stored.nodes
                    if n.state.value != "removed"}
    if config_nodes != stored_nodes:
        differences.append("the node list differs")
    if differences:
        logger.warning(
            "the store's topology (epoch %d) is in force, not the config's: %s; membership "
            "changes go through the admin API (docs/operations.md)",
            found.epoch, "; ".join(differences))
