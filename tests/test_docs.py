"""Every relative link in the README, the CHANGELOG and docs/ reaches a file that exists and,
when it names a section (`file.md#anchor`), a heading of that file. A section deleted by
accident (as docs/benchmarks.md's serving, calibration and label-audit figures once were)
fails here instead of leaving links that land nowhere."""

import re
from pathlib import Path

from conftest import ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def _pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md",
            *sorted((ROOT / "docs").rglob("*.md"))]


def _prose(text: str) -> str:
    """The text outside fenced code blocks and indented code lines, where links are links."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced and not line.startswith("    "):
            out.append(line)
    return "\n".join(out)


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped,
    spaces to '-', a repeated heading numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    for line in _prose(text).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        if n:
            seen[f"{slug}-{n}"] = 1
    return set(seen)


def broken_links(page: Path) -> list[str]:
    bad = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" \
                and anchor not in anchors(dest.read_text(encoding="utf-8")):
            bad.append(f"{target} (no such heading in {dest.name})")
    return bad


def test_anchors_follow_githubs_rule():
    text = "# Benchmarks\n## Memory at scale: `make bench-scale`\n## Label audit (2026-12-04)\n" \
           "```\n# not a heading\n```\n## Serving\n## Serving\n"
    assert anchors(text) == {"benchmarks", "memory-at-scale-make-bench-scale",
                             "label-audit-2026-12-04", "serving", "serving-1"}


def test_every_link_in_the_docs_lands_on_a_file_and_a_heading():
    bad = {str(p.relative_to(ROOT)): b for p in _pages() if (b := broken_links(p))}
    assert not bad, bad
