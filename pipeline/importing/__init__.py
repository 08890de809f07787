"""`pipe import pairs`: an existing paired dataset (colour images and their line drawings) into a dataset root.

    sources.py   where the pairs are: the two layouts, the kept train/val split, one work item per pair
    pairs.py     the per-pair function: decode, prepare's filters, one crop for both halves, write
    stage.py     the stage for the runner (ledger imports.parquet) and exact-duplicate detection
    publish.py   the run: locks, the stage, then the prepared.parquet and lines.parquet rows it implies
    splits.py    the kept splits, for `pipe shard`
"""
