"""Benchmark result table: one row per figure, with git's figure, the ratio, the target and PASS/MISS."""

from dataclasses import dataclass


@dataclass
class Row:
    figure: str
    ours: str = "-"
    git: str = "-"
    ratio: str = "-"
    target: str = "-"
    result: str = ""
    note: str = ""


def seconds(value):
    return "-" if value is None else f"{value:.3f} s"


def ratio_row(figure, ours_s, git_s, limit, note="", valid=True):
    """A row comparing two times, PASS when ours/git <= limit and the work was checked equal."""
    if ours_s is None or git_s is None or git_s <= 0:
        return Row(figure, seconds(ours_s), seconds(git_s), "-", f"<= {limit}", "n/a", note)
    ratio = ours_s / git_s
    result = "PASS" if valid and ratio <= limit else "MISS"
    return Row(figure, seconds(ours_s), seconds(git_s), f"{ratio:.2f}", f"<= {limit}", result, note)


def limit_row(figure, value, shown, limit, target, note="", strict=False):
    """A row comparing one value with an absolute limit (strict: value < limit, else <=)."""
    if value is None:
        return Row(figure, "-", "-", "-", target, "n/a", note)
    ok = value < limit if strict else value <= limit
    return Row(figure, shown, "-", "-", target, "PASS" if ok else "MISS", note)


def count_row(figure, value, limit, note=""):
    """A row for a count per unit (kernel requests per file): PASS when value <= limit; no limit: info."""
    if value is None:
        return Row(figure, "-", "-", "-", "-" if limit is None else f"<= {limit}", "n/a", note)
    if limit is None:
        return Row(figure, f"{value:.3f}", "-", "-", "-", "info", note)
    return Row(figure, f"{value:.3f}", "-", "-", f"<= {limit}", "PASS" if value <= limit else "MISS", note)


def info_row(figure, ours_s, git_s, note=""):
    """A row with no target (another library, shown for comparison)."""
    ratio = f"{ours_s / git_s:.2f}" if ours_s is not None and git_s else "-"
    return Row(figure, seconds(ours_s), seconds(git_s), ratio, "-", "info" if ours_s is not None else "n/a", note)


def render(rows):
    headers = Row("figure", "gitfs/odb", "git", "ratio", "target", "result", "note")
    fields = ["figure", "ours", "git", "ratio", "target", "result", "note"]
    table = [headers] + rows
    widths = {f: max(len(getattr(r, f)) for r in table) for f in fields}
    lines = []
    for index, row in enumerate(table):
        cells = [getattr(row, f).ljust(widths[f]) for f in fields]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * widths[f] for f in fields))
    return "\n".join(lines)
