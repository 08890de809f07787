"""Merge the parts of `bench/gpu.sh` into one JSON report, evaluate the targets, print a summary.

    python bench/gpu_report.py PARTS_DIR --out gpu.json [--device cuda] [--quick]

PARTS_DIR holds what gpu.sh leaves: parts.tsv (one line per part run: name, exit status, wall seconds,
time budget, command) and each part's NAME.json and NAME.log. A part's entry is its JSON under
"result", its status ("ok", "failed" or "timed_out") and, unless ok, an "error" (what its log ended
with); a part cut short keeps the rows it wrote. The targets (from the benchmark issue):

  - sketchkeras_bf16_512: sketchKeras at 512x512 in bf16 on the device, >= 300 images/s;
  - draft_mfu_256: a draft recipe's training step at 256x256, >= 35% MFU (eager or compiled);
  - real_loader_step: the step fed by the real loader within 10% of the step on on-device data.

Each is "pass", "fail", "no_data" (its part failed or lacks the figure) or "not_applicable" (not on a
CUDA device, where the figure, if any, is still shown). Exits 1 when a part failed or timed out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, write_json  # noqa: E402

TIMED_OUT = (124, 137)  # timeout(1)'s status, and a SIGKILL after --kill-after
SKETCHKERAS_TARGET = 300.0  # images/s
MFU_TARGET = 0.35
LOADER_TARGET = 1.10  # real-loader step time over the synthetic step's


def log_tail(path: Path, lines: int = 3) -> str:
    if not path.is_file():
        return ""
    kept = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def part_entry(folder: Path, name: str, rc: int, seconds: float, budget: float, command: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": "ok", "rc": rc, "seconds": round(seconds, 1), "budget_s": budget,
                             "command": command.replace(str(folder), "PARTS")}
    result_file = folder / f"{name}.json"
    if result_file.is_file():
        try:
            entry["result"] = json.loads(result_file.read_text())
        except json.JSONDecodeError as exc:
            entry["result_error"] = f"{result_file.name} is not JSON: {exc}"
    if rc in TIMED_OUT:
        entry["status"] = "timed_out"
        entry["error"] = f"stopped at its {budget:g} s budget" + (" (what it finished is kept)" if "result" in entry else "")
    elif rc != 0:
        entry["status"] = "failed"
        entry["error"] = f"exit status {rc}: {log_tail(folder / f'{name}.log') or 'no output'}".replace(str(folder), "PARTS")
    elif "result" not in entry:
        entry["status"] = "failed"
        entry["error"] = entry.pop("result_error", f"exited 0 but wrote no {result_file.name} (does the script take --json?)")
    return entry


def read_parts(folder: Path) -> dict[str, dict[str, Any]]:
    parts = {}
    table = folder / "parts.tsv"
    for line in table.read_text().splitlines() if table.is_file() else []:
        name, rc, seconds, budget, command = (line.split("\t") + [""] * 5)[:5]
        parts[name] = part_entry(folder, name, int(rc), float(seconds), float(budget), command)
    return parts


def leaves(node: Any, tokens: frozenset[str] = frozenset(), key: str = "") -> Iterator[tuple[frozenset[str], str, float]]:
    """(tokens, key, number) for every number in a JSON tree. The tokens are the words of the keys on the
    way (split at non-alphanumerics: "sketchkeras_bf16" gives both) and the whole string values of the
    objects on the way (a row {"precision": "bf16", ...} names bf16 as a key would)."""
    if isinstance(node, dict):
        here = tokens | {v.lower() for v in node.values() if isinstance(v, str)}
        for name, value in node.items():
            yield from leaves(value, here | set(re.split(r"[^a-z0-9]+", str(name).lower())), str(name).lower())
    elif isinstance(node, list):
        for item in node:
            yield from leaves(item, tokens, key)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield tokens, key, float(node)


def sketchkeras_bf16_rate(extract: dict[str, Any]) -> float | None:
    """The best sketchKeras bf16 images/s in bench/extract.py's JSON, whatever its nesting: the largest
    number named by sketchkeras and bf16 whose own key is a rate or a batch size, and not by an error,
    a difference or fp32."""
    rates = [value for tokens, key, value in leaves(extract)
             if {"sketchkeras", "bf16"} <= tokens and not tokens & {"error", "diff", "difference", "vs", "fp32"}
             and (key.isdigit() or any(mark in key for mark in ("per_s", "per_second", "rate", "img/s", "images/s")))]
    return max(rates, default=None)


def target(status: str, value: float | None, goal: str, note: str = "") -> dict[str, Any]:
    return {"goal": goal, "value": value, "status": status, **({"note": note} if note else {})}


def judge(value: float | None, passed: bool, on_device: bool, goal: str, note: str = "") -> dict[str, Any]:
    if not on_device:
        return target("not_applicable", value, goal, "not on a CUDA device: the target is for the GPU run")
    if value is None:
        return target("no_data", None, goal, note)
    return target("pass" if passed else "fail", value, goal, note)


def evaluate_targets(parts: dict[str, dict[str, Any]], on_device: bool) -> dict[str, dict[str, Any]]:
    results = {name: part.get("result") or {} for name, part in parts.items()}
    targets = {}

    extract = results.get("extract", {})
    rate = sketchkeras_bf16_rate(extract)
    size = extract.get("size", 512)
    note = "" if size == 512 else f"measured at {size}x{size}, not 512x512"
    targets["sketchkeras_bf16_512"] = judge(rate, rate is not None and rate >= SKETCHKERAS_TARGET and size == 512, on_device,
                                            f">= {SKETCHKERAS_TARGET:g} images/s at 512x512 in bf16", note)

    best, where = None, ""
    for row in results.get("train", {}).get("rows", []):
        if row.get("stage") != "draft" or row.get("size") != 256:
            continue
        for mode in ("eager", "compiled"):
            mfu = (row.get(mode) or {}).get("mfu")
            if mfu is not None and (best is None or mfu > best):
                best, where = mfu, f"{row['recipe']} draft, batch {row['batch_size']}, {mode}"
    targets["draft_mfu_256"] = judge(best, best is not None and best >= MFU_TARGET, on_device,
                                     f">= {MFU_TARGET:.0%} MFU for a draft recipe's step at 256x256", where)

    ratios = [(row["real_over_synthetic"], f"{row['recipe']} {row['stage']}") for row in results.get("real_loader", {}).get("rows", [])
              if "real_over_synthetic" in row]
    worst = max(ratios) if ratios else (None, "")
    targets["real_loader_step"] = judge(worst[0], worst[0] is not None and worst[0] <= LOADER_TARGET, on_device,
                                        f"real-loader step time <= {LOADER_TARGET:.2f}x the synthetic step's", worst[1])
    return targets


def merge(folder: Path, device: str, quick: bool) -> dict[str, Any]:
    try:
        machine = environment(device)
    except Exception as exc:  # noqa: BLE001 - the report is written whatever the device says
        machine = {"device": device, "error": f"{type(exc).__name__}: {exc}"}
    parts = read_parts(folder)
    return {
        "benchmark": "bench/gpu.sh",
        "quick": quick,
        **machine,
        "seconds": round(sum(part["seconds"] for part in parts.values()), 1),
        "failed_parts": [name for name, part in parts.items() if part["status"] != "ok"],
        "targets": evaluate_targets(parts, machine.get("device", "").startswith("cuda") and "error" not in machine),
        "parts": parts,
    }


def summary(report: dict[str, Any]) -> str:
    lines = [f"{report.get('device_name', report['device'])}, torch {report.get('torch', '?')}: {report['seconds']:.0f} s of parts"]
    for name, part in report["parts"].items():
        line = f"  {name:<12} {part['status']:<9} {part['seconds']:6.0f} s of {part['budget_s']:g}"
        lines.append(line + (f"  {part['error']}" if "error" in part else ""))
    for name, result in report["targets"].items():
        value = result["value"]
        shown = "-" if value is None else f"{value:.3g}"
        lines.append(f"  target {name:<22} {result['status']:<15} {shown:>8}  ({result['goal']}{'; ' + result['note'] if 'note' in result else ''})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", type=Path, help="the folder gpu.sh wrote the parts into")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    report = merge(args.parts, args.device, args.quick)
    write_json(args.out, report)
    print(summary(report))
    print(f"report: {args.out}")
    return 1 if report["failed_parts"] else 0


if __name__ == "__main__":
    sys.exit(main())
