"""Two-stage colorization trainers (draft, refinement) streaming WebDataset shards: `pipe train`.

Not built yet.
"""
