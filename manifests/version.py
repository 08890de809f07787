"""The version of pipe, recorded in what it writes (reports, User-Agent) so outputs can be traced to code."""

PIPE_VERSION = "0.1.0"
