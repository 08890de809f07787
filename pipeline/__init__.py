"""pipe: build line-art colorization datasets and train colorization models, end to end.

This package is the top layer: the command line, the stage session and executors, every stage's
shell and the job runner. The libraries below it (crawlers, extractors, synth, train, manifests)
never import it.

Importing it imports nothing else (`__version__` is read on first use): the first thing `pipe` runs
is `pipeline.cli.main`, which makes Ctrl-C during the rest of start-up one line.
"""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from manifests.version import PIPE_VERSION  # noqa: PLC0415

        return PIPE_VERSION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
