"""A job's option values checked before anything runs, by the parsers the commands themselves use.

Click checks an option's type (`--shard-samples many`); what a value means (`hints = "none,cfdi"`, a
recipe that does not exist, a schedule the recipe cannot take) the command checks only once it runs,
which in a job can be hours of earlier stages later. So `pipe run` puts every stage's parsed values
through the same library functions the command calls, and a mistake is one line naming the table and
the key before the first stage starts.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.errors import PipeError


def check_values(entry: Any, stage: str, params: dict[str, Any]) -> tuple[str, str] | None:
    """(key, what is wrong) of the first value the stage's command would refuse, or None when all would pass."""
    for key, check in entry.hook("value_checks")(params, stage.split(".", 1)[-1]):
        try:
            check()
        except (ValueError, PipeError) as exc:
            message = str(exc)
            named = re.match(r"--([a-z][a-z-]*)", message)
            return (named.group(1) if named else key), message
    return None
