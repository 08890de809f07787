"""Colour-hint and draft-artifact synthesis on batch tensors, used by `pipe shard`.

Not built yet.
"""
