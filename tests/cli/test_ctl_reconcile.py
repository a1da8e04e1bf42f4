"""`miroir ctl reconcile` draws the pass's report by client uid, the node-side index beside a
uid whose data lives under another name, and node-side indexes no client uid reaches."""

from __future__ import annotations

import argparse

from miroir.cli.ctl.checks import run_reconcile
from miroir.cli.ctl.render import Output


def found(repaired: int) -> dict:
    return {"settings": {"lagging": [], "repaired": []}, "skipped": None,
            "documents": {"shardsChecked": 8, "shardsDiffering": [3] if repaired else [],
                          "documentsDiffering": repaired, "documentsRepaired": repaired,
                          "ties": 0}}


class Admin:
    def post(self, path: str, timeout_s: float) -> dict:
        assert path == "/_miroir/consistency"
        return {"enabled": True, "passes": 2, "totals": {},
                "indexes": {"blue": {"nodeIndex": "green", **found(1)},
                            "movies": {"nodeIndex": "movies", **found(0)}},
                "orphans": {"blue": {"nodeIndex": "blue", **found(0)}}}


def test_the_reconcile_table_names_client_uids_node_side_names_and_orphans(capsys):
    assert run_reconcile(Admin(), Output(as_json=False), argparse.Namespace(timeout=5)) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "│" in line]
    first_cells = [row.split("│")[1].strip() for row in rows]
    assert "blue (node-side green)" in first_cells
    assert "movies" in first_cells
    assert "blue (node-side, no client uid)" in first_cells
