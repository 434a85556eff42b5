"""ARCHITECTURE.md's boundaries, read from the source: the stream (realtime/) imports nothing
from the tasks app, and neither package has an import circle, counting imports made inside
functions (a circle broken by a late import is still a circle)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("realtime", "tasks")


def imports_of(path, package):
    """(modules of `package` that `path` imports, other top-level packages it imports)."""
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                if node.level == 1:
                    inside.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif node.module.split(".")[0] == package:
                parts = node.module.split(".")
                inside.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
            else:
                outside.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                (inside.add(parts[1]) if parts[0] == package and len(parts) > 1 else outside.add(parts[0]))
    return inside, outside


def graph(package):
    modules = {path.stem: path for path in (ROOT / package).glob("*.py")}
    edges = {}
    for name, path in modules.items():
        inside, _ = imports_of(path, package)
        edges[name] = {other for other in inside if other in modules and other != name}
    return edges


def circles(edges):
    """Every import circle, as a list of module names starting and ending at the same one."""
    found, done = [], set()

    def visit(name, path):
        for other in sorted(edges.get(name, ())):
            if other in path:
                found.append(path[path.index(other):] + [other])
            elif other not in done:
                visit(other, path + [other])
        done.add(name)

    for name in sorted(edges):
        visit(name, [name])
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circles(package):
    assert circles(graph(package)) == []


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_stream_imports_nothing_from_the_tasks_app():
    for path in sorted((ROOT / "realtime").rglob("*.py")):
        _, outside = imports_of(path, "realtime")
        assert "tasks" not in outside, f"{path.relative_to(ROOT)} imports from tasks/"
