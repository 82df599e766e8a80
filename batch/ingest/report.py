"""The summary table an operator sees after an ingestion run."""

from __future__ import annotations

from rich.table import Table

from batch.ingest.run import RunSummary


def summary_table(summary: RunSummary) -> Table:
    table = Table(title="ingestion")
    for column in ("batch", "status", "fetched", "valid", "quarantined", "dropped", "loaded"):
        table.add_column(column, justify="right" if column not in ("batch", "status") else "left")
    table.add_column("seconds (validate / clean / load)", justify="right")
    for r in summary.results:
        dropped = sum(v for k, v in r.rows.items() if k.startswith("dropped_"))
        seconds = " / ".join(
            f"{r.stage_seconds.get(s, 0):.2f}" for s in ("validate", "clean", "load")
        )
        table.add_row(
            r.batch_id,
            "[green]loaded[/]" if r.status == "loaded" else "[red]quarantined[/]",
            f"{r.rows.get('fetched', 0):,}",
            f"{r.rows.get('valid', 0):,}",
            f"{r.rows.get('quarantined', 0):,}",
            f"{dropped:,}",
            f"{r.rows.get('loaded', 0):,}",
            seconds,
        )
    return table
