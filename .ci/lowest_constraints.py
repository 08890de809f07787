"""Print a pip constraints file pinning each dependency of pyproject.toml at the lowest release it allows.

    python .ci/lowest_constraints.py > lowest.txt
    pip install -c lowest.txt -e ".[test]"

For each requirement with a lower bound, the lowest published release (`pip index versions`) that
satisfies its whole specifier is pinned with `==` (a bound like `>=4.8` names no release of a package
versioned 4.8.0.76). Requirements whose environment marker does not hold here are left out, and so is
torch: the README installs the pinned CPU or CUDA wheel first, and a constraint would fight that install.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

LEFT_TO_THE_README = {"torch"}


def lowest_pins(requirements: list[str]) -> list[str]:
    pins = []
    environment = default_environment()
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        has_lower_bound = any(spec.operator in (">=", "~=", "==", ">") for spec in requirement.specifier)
        if name in LEFT_TO_THE_README or not has_lower_bound:
            continue
        allowed = [v for v in published_versions(name) if not v.is_prerelease and v in requirement.specifier]
        if not allowed:
            raise SystemExit(f"error: no published release of {name} satisfies {requirement.specifier}")
        pins.append(f"{name}=={min(allowed)}")
    return pins


def published_versions(name: str) -> list[Version]:
    """Every release of `name` on the package index pip is configured with."""
    listing = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name], capture_output=True, text=True, check=True).stdout
    line = next(line for line in listing.splitlines() if line.startswith("Available versions:"))
    versions = []
    for text in line.removeprefix("Available versions:").split(","):
        try:
            versions.append(Version(text.strip()))
        except InvalidVersion:
            continue
    return versions


def main() -> int:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    print("\n".join(lowest_pins(project["dependencies"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
