"""pipe: build line-art colorization datasets and train colorization models, end to end.

This package is the top layer: the command line, the stage session and executors, every stage's
shell and the job runner. The libraries below it (crawlers, extractors, synth, train, manifests)
never import it.
"""

from manifests.version import PIPE_VERSION as __version__

__all__ = ["__version__"]
