"""The end-of-run summary every stage prints."""

from __future__ import annotations

from pipeline.console import console, counts_table
from pipeline.runner import RunReport


def print_run_report(report: RunReport) -> None:
    if report.nothing_to_do:
        console.print(
            f"[green]{report.stage}: nothing to do[/]: all {report.planned:,} inputs are already in the ledger"
        )
    else:
        rate = report.processed / report.seconds if report.seconds else 0.0
        console.print(
            f"{report.stage}: processed {report.processed:,} inputs in {report.seconds:.1f} s ({rate:.1f}/s); "
            f"{report.skipped:,} skipped as already done"
        )
        console.print(counts_table(f"{report.stage}: this run", report.new_counts))
    console.print(counts_table(f"{report.stage}: whole ledger", report.total_counts))
