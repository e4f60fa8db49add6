"""The core never imports a plugin: everything a plugin adds comes through entry points."""

from __future__ import annotations

import ast
from pathlib import Path

import foxtrot_stream

PLUGIN_PACKAGES = ("foxtrot_stream_binance", "foxtrot_stream_http_fallback", "foxtrot_stream_redis")


def test_core_imports_no_plugin() -> None:
    root = Path(foxtrot_stream.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(PLUGIN_PACKAGES)]
    assert offenders == []


def test_only_the_foxtrot_integration_imports_the_foxtrot_host() -> None:
    """Foxtrot is a host, not a dependency: one module of the project imports it."""
    root = Path(foxtrot_stream.__file__).parents[2]  # the repository
    importers = set()
    for path in sorted(root.glob("[cp]*/**/*.py")):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(n == "foxtrot" or n.startswith("foxtrot.") for n in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers == {"core/foxtrot_stream/integrations/foxtrot.py"}


#: The core's parts, lowest first: a part imports only from its own and lower parts.
LAYERS = (
    "util",  # leaf helpers: JSON with comments, redaction, shard assignment
    "config",  # settings and their loader
    "policy",  # pure state machines: backoff, breaker, coverage
    "contract",  # the plugin contract and loader: Tick, records, hook specs, plugin manager
    "transport",  # the core's own plugin: the WebSocket transport and default hooks
    "runtime",  # feed, shard supervisors, sequencer, buffers, metrics, status records
    "surfaces",  # operator surfaces: CLI, terminal, status server, /metrics, demo
    "integrations",  # hosts: StreamEngine, Foxtrot, vnpy
    "testing",  # what plugin authors test with
)


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("foxtrot_stream.")]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and not node.level
            and node.module.startswith("foxtrot_stream.")
        ):
            out.append(node.module)
    return out


def test_each_part_imports_only_downwards_and_no_module_imports_in_a_cycle() -> None:
    root = Path(foxtrot_stream.__file__).parent
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(("foxtrot_stream", *parts)).removesuffix(".__init__")
        graph[module] = set()
        if len(parts) == 1:  # foxtrot_stream/__init__.py, __main__.py: the public face
            continue
        assert parts[0] in rank, f"{path}: a part the layering does not know"
        for imported in _imports(path):
            graph[module].add(imported)
            part = imported.split(".")[1]
            if part in rank and rank[part] > rank[parts[0]]:
                upward.append(f"{module} imports {imported}")
    assert upward == []
    # no cycles between modules (a part may import its own modules, never in a circle)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*trail, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_top_level_holds_only_the_public_face() -> None:
    root = Path(foxtrot_stream.__file__).parent
    top = {p.name for p in root.glob("*.py")}
    assert top == {"__init__.py", "__main__.py"}
    assert {p.name for p in root.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(LAYERS)
