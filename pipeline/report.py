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
        busy = report.busy_seconds
        # The progress bar's rate is over the time until the bar ended; say so when global steps after it took a while.
        while_processing = f", {report.processed / busy:.1f}/s until the last input" if busy and report.seconds - busy > 0.05 * report.seconds else ""
        console.print(
            f"{report.stage}: processed {report.processed:,} inputs in {report.seconds:.1f} s ({rate:.1f}/s{while_processing}); "
            f"{report.skipped:,} skipped as already done"
        )
    print_counts(report.stage, [] if report.nothing_to_do else report.new_counts, report.total_counts)


def print_counts(stage: str, new_counts: list[tuple[str, str, int]], total_counts: list[tuple[str, str, int]]) -> None:
    """This run's counts and the whole ledger's, as one table when they are the same (a first run)."""
    if new_counts and new_counts == total_counts:
        console.print(counts_table(f"{stage}: this run (the whole ledger)", new_counts))
        return
    if new_counts:
        console.print(counts_table(f"{stage}: this run", new_counts))
    console.print(counts_table(f"{stage}: whole ledger", total_counts))
