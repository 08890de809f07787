"""The `__main__` that pipe's worker processes start with (see `pipeline.cli.light_worker_start`).

Python's spawn start method runs the parent's main module again in every worker before the worker's
first task. For the `pipe` console script that module is the whole command line, PyTorch included:
about a second per worker on a small machine, for workers that may only need OpenCV. Workers import
this empty module instead, and then only what their tasks need.
"""
