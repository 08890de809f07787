"""The end-of-crawl summary: what this run recorded, why it stopped, and the whole ledger."""

from __future__ import annotations

from pathlib import Path

from pipeline.crawl.stage import CrawlReport
from manifests.ledger import Ledger, rows_by_status
from manifests.schema import RAW
from pipeline.console import console
from pipeline.report import print_counts


def print_crawl_report(report: CrawlReport, root: Path) -> None:
    recorded = sum(count for _, _, count in report.new_counts)
    console.print(
        f"crawl {report.site} [dim]\\[{report.tags}][/]: {report.pages:,} API pages, {report.posts_listed:,} posts listed, "
        f"{recorded:,} recorded in {report.seconds:.1f} s"
    )
    if report.stop_reason:
        style = "red" if report.error else "dim"
        console.print(f"[{style}]stopped: {report.stop_reason}[/]")
    print_counts("crawl", report.new_counts, rows_by_status(Ledger(root, RAW).read()))
