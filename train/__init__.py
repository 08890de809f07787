"""Two-stage colorization training (draft, refinement) fed by WebDataset shards.

Built so far: `train.loader` streams `pipe shard` output into batched tensors (node and worker
splitting, shuffling, resampled or repeated epochs for multi-GPU runs, on-device re-synthesis of hints
and drafts); `train.networks` holds the U-Net generator family and the PatchGAN discriminator;
`train.checkpoint` writes and restores whole training states atomically. The recipes, the training
loop and `pipe train` come with the trainers issue.
"""
