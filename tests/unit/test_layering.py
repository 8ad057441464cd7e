"""Dependencies point one way: pages → oaviz.ui → oaviz.services → oaviz.{training, analysis} → oaviz.{models, data}.

Checked on the syntax tree of every module (function-level and conditional
imports included), so a comment or a string mentioning streamlit is not a hit
and an import hidden inside a function is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "oaviz"
# Higher number = higher layer; a module may import only its own layer or lower ones.
LAYERS = {"ui": 3, "services": 2, "training": 1, "analysis": 1, "models": 0, "data": 0}


def imported_modules(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file; relative imports are resolved.

    ``text`` replaces the file's content (to test the detector without writing into the package).
    """
    source = path.read_text(encoding="utf-8") if text is None else text
    tree = ast.parse(source, filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # `from oaviz import ui` imports the subpackage ui
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names if mod in ("oaviz",)]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            out.append((node.lineno, node.args[0].value))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _layer(path_or_module: str) -> str | None:
    parts = path_or_module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "oaviz" and parts[1] in LAYERS else None


def test_the_walk_sees_the_package():
    files = _modules()
    assert len(files) >= 10
    assert any(p.parent.name == "ui" for p in files) and any(p.parent.name == "services" for p in files)


def test_only_ui_imports_streamlit():
    offenders = []
    for path in _modules():
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("oaviz", "ui"):
            continue
        for line, mod in imported_modules(path):
            if mod == "streamlit" or mod.startswith("streamlit."):
                offenders.append(f"{rel}:{line} imports {mod}")
    assert not offenders, "streamlit outside oaviz/ui (and pages/, app.py):\n" + "\n".join(offenders)


def test_no_upward_imports():
    offenders = []
    for path in _modules():
        rel = path.relative_to(ROOT)
        own = _layer(".".join(rel.with_suffix("").parts))
        if own is None:
            continue
        for line, mod in imported_modules(path):
            other = _layer(mod)
            if other is not None and LAYERS[other] > LAYERS[own]:
                offenders.append(f"{rel}:{line} ({own}) imports {mod} ({other})")
    assert not offenders, "imports against the layering:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source, expected", [
    ("import streamlit as st", "streamlit"),
    ("from streamlit.testing.v1 import AppTest", "streamlit.testing.v1"),
    ("def f():\n    import streamlit\n", "streamlit"),
    ("try:\n    import numpy\nexcept ImportError:\n    pass\nif True:\n    from streamlit import cache_data\n", "streamlit"),
    ("import importlib\nimportlib.import_module('streamlit')", "streamlit"),
])
def test_detector_finds_hidden_imports(source, expected):
    mods = [m for _, m in imported_modules(PKG / "data" / "m.py", text=source)]
    assert expected in mods


def test_detector_ignores_comments_and_strings():
    text = '# import streamlit\nx = "import streamlit"\n"""from streamlit import x"""\n'
    assert imported_modules(PKG / "data" / "m.py", text=text) == []


def test_relative_imports_are_resolved():
    text = "from ..ui import state\nfrom . import cohorts\n"
    mods = [m for _, m in imported_modules(PKG / "services" / "x.py", text=text)]
    assert "oaviz.ui" in mods and "oaviz.services" in mods
    assert _layer("oaviz.ui") == "ui"
