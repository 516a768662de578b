"""DESIGN.md section 2: the packages import each other only across the allowed borders.

| package | may import of ours |
|---|---|
| mediaserver | nothing of signaling, recorder, benchmarks, tests |
| mediaserver/rtp | nothing of ours but the compiled C of mediaserver/native (a leaf too) |
| signaling | mediaserver only through mediaserver.api; never recorder, benchmarks, tests |
| recorder | shared helpers of mediaserver (RTP, params, lifetime, RPC); never signaling |
| web_client | nothing on the server side (static files, no build step) |
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {"mediaserver", "signaling", "recorder", "benchmarks", "tests", "web_client"}

# package -> (packages it must not import, the only modules of mediaserver it may import)
RULES: dict[str, tuple[set[str], set[str] | None]] = {
    "mediaserver": ({"signaling", "recorder", "benchmarks", "tests"}, None),
    "signaling": ({"recorder", "benchmarks", "tests"}, {"mediaserver.api"}),
    "recorder": ({"signaling", "benchmarks", "tests"},
                 {"mediaserver.rtp", "mediaserver.params", "mediaserver.lifetime",
                  "mediaserver.rpc"}),
}
# mediaserver/rtp is a leaf: it imports nothing else of ours but the compiled C of
# mediaserver/native (whose structs its VP8 state lives in), which imports nothing.
LEAVES = {"mediaserver/rtp"}


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Full dotted names of what `path` imports ("from a import b" gives a.b); ".." for
    a relative import that leaves its own package."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(root).parent.parts)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:
                names.add("..")  # reaching out of its own package
                continue
            module = node.module or ""
            if node.level == 1:
                module = f"{package}.{module}" if module else package
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def allowed_by(allowed: set[str], module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def border_problems(root: Path = ROOT) -> list[str]:
    problems = []
    for package, (forbidden, media_only) in RULES.items():
        for path in (root / package).rglob("*.py"):
            where = path.relative_to(root)
            for module in sorted(imported_modules(path, root)):
                top = module.split(".")[0]
                if top in forbidden:
                    problems.append(f"{where} imports {module}")
                elif media_only is not None and top == "mediaserver" and \
                        not allowed_by(media_only, module):
                    problems.append(f"{where} imports {module} (only {sorted(media_only)})")
    return problems


def test_packages_respect_borders() -> None:
    assert not border_problems()


def test_signaling_reaches_the_media_plane_through_its_api_only() -> None:
    # the rule is checked on the real tree above; here, that the check would see a breach
    assert allowed_by({"mediaserver.api"}, "mediaserver.api.MediaControl")
    assert not allowed_by({"mediaserver.api"}, "mediaserver.worker.Worker")
    assert not allowed_by({"mediaserver.api"}, "mediaserver.wire")
    assert not allowed_by({"mediaserver.rtp"}, "mediaserver.rtpx")


def test_breaches_are_seen(tmp_path: Path) -> None:
    for package, source in (("signaling", "from mediaserver import wire\nfrom . import rooms\n"),
                            ("recorder", "import signaling.rooms\n"),
                            ("mediaserver", "from recorder import vod\n")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "probe.py").write_text(source)
    assert imported_modules(tmp_path / "signaling" / "probe.py", tmp_path) == \
        {"mediaserver.wire", "signaling.rooms"}
    assert sorted(border_problems(tmp_path)) == [
        "mediaserver/probe.py imports recorder.vod",
        "recorder/probe.py imports signaling.rooms",
        "signaling/probe.py imports mediaserver.wire (only ['mediaserver.api'])"]


def test_rtp_leaf_imports_nothing_of_ours() -> None:
    problems = []
    for folder in LEAVES:
        for path in (ROOT / folder).rglob("*.py"):
            own = {m for m in imported_modules(path)
                   if m == ".." or m.split(".")[0] in OURS - {"mediaserver"}
                   or (m.startswith("mediaserver.")
                       and not m.startswith(("mediaserver.rtp", "mediaserver.native._")))}
            if own:
                problems.append(f"{path.relative_to(ROOT)} imports {sorted(own)}")
    assert not problems, problems


def test_web_client_has_no_build_step_and_no_server_code() -> None:
    web = ROOT / "web_client"
    assert not (web / "package.json").exists()
    assert (web / "room.html").exists()
    assert not list(web.rglob("*.py"))
