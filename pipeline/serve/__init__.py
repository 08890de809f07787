"""`pipe serve`: a local web app and HTTP API that colour sketches with trained checkpoints.

    models.py    the loaded draft (and refinement) generators and one batched forward
    uploads.py   decoding and checking what a request sends (sketch, hint layer, reference)
    batcher.py   the queue that groups requests arriving together into one device batch
    app.py       the Starlette application: the page, /api/colorize, /api/models, /api/stats
    server.py    binding the socket and running uvicorn (the CLI, tests and benchmarks share it)
    static/      the page: plain HTML, CSS and JavaScript, no network access needed
"""

from pipeline.serve.app import create_app
from pipeline.serve.models import ServedModels

__all__ = ["ServedModels", "create_app"]
