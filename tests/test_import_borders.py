"""DESIGN.md section 2: the packages import each other only across the allowed borders."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "mediaserver": {"signaling", "recorder", "benchmarks", "tests"},
    "signaling": {"recorder", "benchmarks", "tests"},
    "recorder": {"signaling", "benchmarks", "tests"},
}
# mediaserver/rtp is a leaf: it imports nothing else of ours.
LEAVES = {"mediaserver/rtp": {"mediaserver", "signaling", "recorder"}}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            names.add("..")  # reaching out of its own package
    return {n.split(".")[0] for n in names}


def test_packages_respect_borders() -> None:
    problems = []
    for package, forbidden in FORBIDDEN.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = imported_packages(path) & forbidden
            if bad:
                problems.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not problems, problems


def test_rtp_leaf_imports_nothing_of_ours() -> None:
    problems = []
    for folder, forbidden in LEAVES.items():
        for path in (ROOT / folder).rglob("*.py"):
            bad = imported_packages(path) & (forbidden | {".."})
            if bad:
                problems.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not problems, problems


def test_web_client_has_no_build_step() -> None:
    assert not (ROOT / "web_client" / "package.json").exists()
    assert (ROOT / "web_client" / "room.html").exists()
