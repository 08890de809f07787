"""Two-stage colorization training (draft, refinement) fed by WebDataset shards.

`train.loader` streams `pipe shard` output into batched tensors (with node and worker splitting,
shuffling, resampling for multi-GPU runs, and optional on-device re-synthesis of hints and drafts).
The trainers themselves are not built yet.
"""
