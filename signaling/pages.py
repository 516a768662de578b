"""The web client's pages, served with `<link rel="modulepreload">` for their whole module graph.

Without the hints the browser discovers the ES modules level by level (room.js, then what it
imports, then what those import): a round trip per level before the client runs. With them it
fetches every module at once; on loopback that took about 70-100 ms off the join time in
`benchmarks/browser_join.py`. The graph is read from the files' static `import ... from './x.js'`
lines, so the hints never go stale; a page is built once per change of its files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

IMPORT = re.compile(r"""^\s*import\s[^'"]*?from\s+['"]\./([\w./-]+\.js)['"]""", re.MULTILINE)
ENTRY = re.compile(r"""<script type="module" src="/static/(js/[\w./-]+\.js)"></script>""")


@dataclass(slots=True)
class _Built:
    files: list[Path]  # the page and its modules: a change to any rebuilds it
    stamp: list[float]
    body: bytes


_built: dict[Path, _Built] = {}


def module_graph(js_dir: Path, entry: str) -> list[str]:
    """`entry` and every module it imports, directly or not (names relative to js_dir)."""
    seen: list[str] = []
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen or not (js_dir / name).is_file():
            continue
        seen.append(name)
        todo += IMPORT.findall((js_dir / name).read_text(encoding="utf-8"))
    return seen


def _stamp(files: list[Path]) -> list[float]:
    return [f.stat().st_mtime for f in files]


def _build(path: Path) -> _Built:
    html = path.read_text(encoding="utf-8")
    match = ENTRY.search(html)
    if match is None:
        return _Built([path], _stamp([path]), html.encode())
    js_dir = path.parent / "js"
    modules = module_graph(js_dir, Path(match.group(1)).name)
    hints = "".join(f'\n  <link rel="modulepreload" href="/static/js/{m}">'
                    for m in modules[1:])
    files = [path, *(js_dir / m for m in modules)]
    return _Built(files, _stamp(files),
                  (html[:match.end()] + hints + html[match.end():]).encode())


def page_response(web_root: Path, page: str) -> web.Response:
    path = web_root / page
    built = _built.get(path)
    try:
        if built is None or _stamp(built.files) != built.stamp:  # edited: rebuild
            built = _built[path] = _build(path)
    except OSError:
        raise web.HTTPNotFound() from None
    return web.Response(body=built.body, content_type="text/html", charset="utf-8")
