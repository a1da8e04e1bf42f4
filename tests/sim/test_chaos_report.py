"""simulations/chaos.py: the chaos table is reproducible and every expectation holds."""

from __future__ import annotations

from simulations.chaos import REPORT_NAME, main


def test_chaos_table_is_byte_identical_and_every_row_holds(tmp_path):
    assert main(["--out", str(tmp_path / "a")]) == 0
    assert main(["--out", str(tmp_path / "b")]) == 0
    report = (tmp_path / "a" / REPORT_NAME).read_text()
    assert report == (tmp_path / "b" / REPORT_NAME).read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 9  # header + eight experiments
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[3] == "yes", row
        assert cells[4] == "0", row
