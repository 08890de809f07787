"""pipe: build line-art colorization datasets and train colorization models, end to end."""

__version__ = "0.1.0"
