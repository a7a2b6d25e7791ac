#!/usr/bin/env python3
"""Two cheap checks of the tracked files, run first by `make test` and by `make lint`.

1. Wording: the project speaks of the product only. No tracked file may say how it was made:
   issue or session numbers, who worked on which branch, temporary paths, how loaded a machine
   was, what did not finish by a deadline. The patterns are below; a hit prints `path:line:
   text` and fails.
2. Links: every relative link `[text](path#anchor)` in the Markdown documents (README.md,
   CHANGELOG.md, docs/*.md, bench/RESULTS.md) names a file that exists and, where it has an
   anchor, a heading of that file (GitHub's anchor rule). Web links are not fetched.

Standard library only (no venv needed); needs a git checkout (`git ls-files`).

    python3 tools/check_wording.py            # both checks
    python3 tools/check_wording.py --words    # wording only
    python3 tools/check_wording.py --links    # links only
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Words about how the project was made, not about the product (case-insensitive).
WORDING = [
    r"\b(previous|this|that|next|earlier|later|last|first|developer|ceo|helper|each|every)[ -]sessions?\b",
    r"\bsessions?[ -]#?[0-9]+",
    r"\bthe session (that|which|who)\b",
    r"\bissues?[ -]#?[0-9]+",
    r"\bissue'?s? (goal|as filed)",
    r"\bgoals? of (the |this )?issue",
    r"\bhelper[ -](branch|session|h[0-9]+)\b",
    r"\bhelpers? h[0-9]+\b",
    r"\b(a|another|other|one|two|three|four|five|six|each|every) helpers?\b",
    r"\bbranch(es)? h[0-9]+\b",
    r"\bworktrees?\b",
    r"/tmp/",
    r"\bloaded (2-core )?machine\b",
    r"\b(quiet|busy|slow|slower) (host|hour|day)\b",
    r"\bthe quiet machine\b",
    r"\b(by|before|past|missed|until) the deadline\b",
    r"\(deadline\)",
    r"\bfor lack of (cpu|time)\b",
]
PATTERN = re.compile("|".join(f"(?:{p})" for p in WORDING), re.IGNORECASE)

# Not scanned: this file (it holds the patterns) and files that are data, not words.
SKIP = {"tools/check_wording.py", "Cargo.lock"}
SKIP_SUFFIXES = (".gz", ".png", ".onnx", ".npy", ".bin", ".jpg", ".jpeg", ".webp")

LINK_DOCS = ["README.md", "CHANGELOG.md", "bench/RESULTS.md"]
LINK_DIRS = ["docs"]


def tracked() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"check_wording: `git ls-files` failed in {ROOT} ({e}); run it in a git checkout")
    return [p for p in out.decode().split("\0") if p]


def check_words(files: list[str]) -> list[str]:
    problems = []
    for rel in files:
        if rel in SKIP or rel.endswith(SKIP_SUFFIXES):
            continue
        path = ROOT / rel
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the work tree
        for n, line in enumerate(text.splitlines(), 1):
            m = PATTERN.search(line)
            if m:
                shown = line.strip()
                if len(shown) > 160:
                    start = max(0, line.find(m.group(0)) - 60)
                    shown = "..." + line[start : start + 140].strip() + "..."
                problems.append(f"{rel}:{n}: '{m.group(0)}': {shown}")
    return problems


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, letters, digits, spaces,
    hyphens and underscores kept, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = text.strip().lower()
    kept = "".join(
        c
        for c in text
        if c in " -_" or unicodedata.category(c)[0] in "LN"
    )
    return kept.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fence = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        m = None if fence else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(2))
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.add(base if k == 0 else f"{base}-{k}")
    return out


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def check_links(files: list[str]) -> list[str]:
    docs = [d for d in LINK_DOCS if d in files]
    docs += [f for f in files if any(f.startswith(d + "/") for d in LINK_DIRS) and f.endswith(".md")]
    problems = []
    cache: dict[Path, set[str]] = {}
    for rel in docs:
        md = ROOT / rel
        if not md.exists():
            continue
        fence = False
        for n, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if fence:
                continue
            line = re.sub(r"`[^`]*`", "", line)  # links inside code spans are not links
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                path_part, _, anchor = target.partition("#")
                dest = (md.parent / path_part).resolve() if path_part else md
                if not dest.exists():
                    problems.append(f"{rel}:{n}: link to a missing file: {target}")
                    continue
                if anchor and dest.suffix == ".md":
                    if dest not in cache:
                        cache[dest] = anchors(dest)
                    if anchor not in cache[dest]:
                        problems.append(f"{rel}:{n}: no heading for the anchor: {target}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", action="store_true", help="only the wording check")
    ap.add_argument("--links", action="store_true", help="only the link check")
    args = ap.parse_args()
    both = not (args.words or args.links)
    files = tracked()
    failed = False
    if both or args.words:
        p = check_words(files)
        if p:
            failed = True
            print("Words about how the project was made (say what the product does instead):")
            print("\n".join(f"  {x}" for x in p))
    if both or args.links:
        p = check_links(files)
        if p:
            failed = True
            print("Broken links in the documents:")
            print("\n".join(f"  {x}" for x in p))
    if not failed:
        print("check_wording: wording and links ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
