"""`pipe eval --compare A.json B.json`: every metric of two reports side by side, with the change and
which is better, and notes where they are not comparable (FID implementations, repeats, line sources)."""

from __future__ import annotations

from rich.table import Table

from pipeline.eval.report import COMPARED, console_cell, repeats_of, scored_text, sections, source_notes, unscored_of
from pipeline.eval.run import lookup


def compare_table(a: dict, b: dict) -> Table:
    """Every metric of every (line source, hint setting) the two reports share, side by side, with the
    change and the better one."""
    lines_a, lines_b = sections(a), sections(b)
    with_lines = len(lines_a) > 1 or len(lines_b) > 1 or list(lines_a) != list(lines_b)
    table = Table(title=f"{a['name']} (a) vs {b['name']} (b)")
    for column in (*(("lines",) if with_lines else ()), "hints", "metric", "a", "b", "b - a", "better"):
        table.add_column(column, justify="right" if column in ("a", "b", "b - a") else "left")
    for source in [s for s in lines_a if s in lines_b]:
        settings_a, settings_b = lines_a[source]["settings"], lines_b[source]["settings"]
        for setting in [s for s in settings_a if s in settings_b]:
            first = (source,) if with_lines else ()
            for path, metric, _, lower_better, pattern in COMPARED:
                entry_a, entry_b = settings_a[setting], settings_b[setting]
                value_a, value_b = lookup(entry_a, path), lookup(entry_b, path)
                if value_a is None and value_b is None:
                    continue
                if path == ("fid",):
                    metric = entry_a["label"]
                if value_a is None or value_b is None:
                    table.add_row(*first, setting, metric, console_cell(entry_a, path, pattern), console_cell(entry_b, path, pattern), "", "")
                    continue
                better = "=" if value_a == value_b else ("a" if (value_a < value_b) == lower_better else "b")
                table.add_row(*first, setting, metric, console_cell(entry_a, path, pattern), console_cell(entry_b, path, pattern), ("{:+" + pattern[2:]).format(value_b - value_a), better)
    names = lambda lines: {(f"{source}/{setting}" if with_lines else setting) for source, section in lines.items() for setting in section["settings"]}  # noqa: E731
    only = sorted(names(lines_a) ^ names(lines_b))
    notes = [f"in one report only: {', '.join(only)}"] if only else []
    impls = [(r.get("config") or {}).get("fid_impl", "tf") for r in (a, b)]
    if impls[0] != impls[1]:
        notes.append(f"FID implementations differ (a: {impls[0]}, b: {impls[1]}): their FID, KID and C-FID are not comparable")
    repeats = [repeats_of(r) for r in (a, b)]
    if max(repeats) > 1:
        notes.append(f"numbers are means over repeats (a: {repeats[0]}, b: {repeats[1]}), \u00b1 their standard deviation")
    notes += [f"{side}: {scored_text(report)}" for side, report in (("a", a), ("b", b)) if unscored_of(report)]
    notes += [f"{side}: {note}" for side, report in (("a", a), ("b", b)) for note in source_notes(report)]
    if notes:
        table.caption = "; ".join(notes)
    return table
