"""`pipe shard`: synthesize hints and drafts and pack samples into WebDataset shards (see stage.py)."""
