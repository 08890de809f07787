"""Each stage's job hooks: what `pipe run` does around the stage's command (see pipeline/stages.py)."""
