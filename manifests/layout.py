"""Where things live inside one dataset folder (README: "A dataset is one folder"): every path pipe writes.

    ROOT/raw/ab/<sha256>.<ext>            originals (crawl)           ROOT/raw.parquet
    ROOT/prepared/ab/<key>.png            512x512 colour (prepare)    ROOT/prepared.parquet
    ROOT/lines/<method>/ab/<key>.png      line art (extract)          ROOT/lines.parquet
    ROOT/shards/<split>/NNNNN.tar ...     WebDataset shards (shard)   ROOT/shards.parquet
    ROOT/runs/<name>/                     training runs (train)
    ROOT/reports/<name>/                  evaluation reports (eval)
    ROOT/.pipe/                           bookkeeping: ledger parts, temporaries, locks, run summaries,
                                          the options each ledger was made with
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# pipe's own bookkeeping (ledger parts of unfinished runs, temporary files, locks) lives here.
STATE_DIR = ".pipe"

RAW_TREE = "raw"
PREPARED_TREE = "prepared"
LINES_TREE = "lines"
SHARDS_DIR = "shards"
RUNS_DIR = "runs"
REPORTS_DIR = "reports"
# `pipe run`: one folder per job run (job.toml as it ran, job.log, summary.json).
JOBS_DIR = "jobs"
# The options the shards were made with, and the dataset colour histogram (histogram hints).
SHARD_CONFIG_FILE = "_config.json"
SHARD_HISTOGRAM_FILE = "_histogram.npy"
# Cached Inception features of the truths, per split (pipe eval).
REPORTS_CACHE_DIR = ".cache"
RUN_CHECKPOINT = "last.pt"
RUN_CONFIG_FILE = "config.json"
RUN_METRICS_FILE = "metrics.jsonl"
REPORT_JSON_FILE = "report.json"


def fanout(key: str) -> str:
    """The two-hex-digit subfolder a key is filed under, so no folder holds more than 1/256 of a dataset."""
    return key[:2]


@dataclass(frozen=True)
class DatasetLayout:
    root: Path

    # ----------------------------------------------------------------- ledgers and bookkeeping
    def ledger(self, stage: str) -> Path:
        return self.root / f"{stage}.parquet"

    def ledger_parts(self, stage: str) -> Path:
        return self.root / STATE_DIR / "parts" / stage

    def tmp(self, stage: str) -> Path:
        return self.root / STATE_DIR / "tmp" / stage

    def lock(self, stage: str) -> Path:
        return self.root / STATE_DIR / "locks" / f"{stage}.lock"

    def summary(self, name: str) -> Path:
        """The machine-readable summary of the last finished run of `name`."""
        return self.root / STATE_DIR / "summaries" / f"{name}.json"

    def options(self, stage: str) -> Path:
        """The options a stage's ledger was made with (a resume with other values is refused)."""
        return self.root / STATE_DIR / "options" / f"{stage}.json"

    def generation(self, stage: str) -> Path:
        """A token that changes each time a stage starts over (first run, --redo)."""
        return self.root / STATE_DIR / "options" / f"{stage}.generation"

    def upstream(self, stage: str) -> Path:
        """The generations of the upstream stages a stage's ledger was made from."""
        return self.root / STATE_DIR / "options" / f"{stage}.upstream.json"

    def crawl_state(self) -> Path:
        return self.root / STATE_DIR / "crawl"

    # ----------------------------------------------------------------- samples
    def sample(self, tree: str, key: str, ext: str) -> Path:
        """`<root>/<tree>/<ab>/<key>.<ext>`, e.g. prepared/3f/3f9a....png."""
        return self.root / tree / fanout(key) / f"{key}.{ext}"

    def line_art(self, method: str, key: str) -> Path:
        return self.sample(f"{LINES_TREE}/{method}", key, "png")

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # ----------------------------------------------------------------- shards, runs, reports
    @property
    def shards(self) -> Path:
        return self.root / SHARDS_DIR

    def shard_split(self, split: str) -> Path:
        return self.shards / split

    @property
    def shard_config(self) -> Path:
        return self.shards / SHARD_CONFIG_FILE

    @property
    def shard_histogram(self) -> Path:
        return self.shards / SHARD_HISTOGRAM_FILE

    @property
    def runs(self) -> Path:
        return self.root / RUNS_DIR

    def run(self, name: str) -> Path:
        return self.runs / name

    def run_checkpoint(self, name: str) -> Path:
        return self.run(name) / "checkpoints" / RUN_CHECKPOINT

    def run_config(self, name: str) -> Path:
        return self.run(name) / RUN_CONFIG_FILE

    def run_metrics(self, name: str) -> Path:
        return self.run(name) / RUN_METRICS_FILE

    @property
    def reports(self) -> Path:
        return self.root / REPORTS_DIR

    def report(self, name: str) -> Path:
        return self.reports / name

    def report_json(self, name: str) -> Path:
        return self.report(name) / REPORT_JSON_FILE

    @property
    def reports_cache(self) -> Path:
        return self.reports / REPORTS_CACHE_DIR

    @property
    def jobs(self) -> Path:
        return self.root / JOBS_DIR

    def job_state(self, stage: str) -> Path:
        """What `pipe run` remembers between runs of a stage it schedules (train targets, eval inputs)."""
        return self.root / STATE_DIR / "jobs" / f"{stage}.json"
