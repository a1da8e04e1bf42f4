"""What Miroir adds to Meilisearch's HTTP contract, named once for the proxy that sends it and
the simulator and tests that read it.

- `X-Miroir-Degraded` on an answer that lacks part of the data: `shards=<ids>` on a read that
  went ahead without some shards (scatter policy `partial`), `<group>/<shard>,...` on a write
  acknowledged without every replica group.
"""

from __future__ import annotations

DEGRADED_HEADER = "X-Miroir-Degraded"
