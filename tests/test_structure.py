"""The rules of the code's shape, checked: layers, ``__all__``, where errors live, what an import costs.

* imports point only down the layers of DESIGN.md, and ``client``/``server`` never import each other
  (import-linter, configured in pyproject.toml);
* every module has ``__all__``; every name in it exists; every public function or class a module defines,
  and every name a package imports from its modules, is in its ``__all__``;
* every error class lives in its layer's ``errors.py`` and is drawn in the tree of ``headwater/errors.py``;
* ``import headwater.client`` for remote use loads neither SQLAlchemy nor Alembic.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import headwater
from headwater.errors import HeadwaterError

SRC = Path(headwater.__file__).parent
ROOT = SRC.parent.parent


def _modules() -> list[tuple[str, Path]]:
    found = []
    for info in pkgutil.walk_packages([str(SRC)], prefix="headwater."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None
        found.append((info.name, Path(spec.origin)))
    return sorted(found)


MODULES = _modules()


def test_imports_point_only_down_the_layers():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=str(SRC.parent),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def _all_of(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        value: ast.expr | None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and isinstance(value, ast.List):
            return [ast.literal_eval(elt) for elt in value.elts]
    return None


@pytest.mark.parametrize("name,path", MODULES, ids=[m for m, _ in MODULES])
def test_every_module_declares_what_it_exports(name: str, path: Path) -> None:
    tree = ast.parse(path.read_text())
    exported = _all_of(tree)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}: a name is twice in __all__"
    module = importlib.import_module(name)
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not have: {missing}"
    public_defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                   and not n.name.startswith("_") and not _registered(n)]
    undeclared = [n for n in public_defs if n not in exported]
    assert not undeclared, f"{name} defines public names missing from its __all__: {undeclared}"
    if path.name == "__init__.py":
        imported = [alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                    and node.level == 1 for alias in node.names if not (alias.asname or alias.name).startswith("_")]
        modules = {n for n in imported if importlib.util.find_spec(f"{name}.{n}") is not None}
        unlisted = [n for n in imported if n not in exported and n not in modules]
        assert not unlisted, f"{name} imports public names it does not list in __all__: {unlisted}"


def _registered(node: ast.stmt) -> bool:
    """A route or a subcommand: a function registered by a decorator (``@router.get(…)``, ``@keys.command(…)``),
    reached through what registered it, not by name."""
    decorators = getattr(node, "decorator_list", [])
    return any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
               and d.func.attr in {"get", "post", "put", "delete", "head", "patch", "command", "group"}
               for d in decorators)


def _error_classes() -> list[type[BaseException]]:
    for name, _ in MODULES:
        importlib.import_module(name)
    seen: list[type[BaseException]] = []
    todo: list[type[BaseException]] = [HeadwaterError]
    while todo:
        cls = todo.pop()
        if cls not in seen and cls.__module__.startswith("headwater"):
            seen.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: c.__qualname__)


def test_every_error_lives_in_its_layers_errors_module_and_in_the_tree():
    import headwater.errors

    tree = headwater.errors.__doc__ or ""
    classes = _error_classes()
    assert len(classes) > 40
    for cls in classes:
        assert cls.__module__.endswith("errors"), f"{cls.__qualname__} is defined in {cls.__module__}"
        assert f" {cls.__qualname__}" in tree or f"─ {cls.__qualname__}" in tree, \
            f"{cls.__qualname__} is missing from the tree in headwater/errors.py"
        layer_root = cls.__module__.split(".")[:2]
        assert inspect.getmodule(cls) is importlib.import_module(".".join([*layer_root, "errors"])
                                                                 if len(layer_root) > 1 and layer_root[1] != "errors"
                                                                 else "headwater.errors")
    drawn = [line.split("─ ")[1].split()[0] for line in tree.splitlines() if "─ " in line]
    names = {cls.__qualname__ for cls in classes}
    assert set(drawn) <= names, f"the tree names classes that do not exist: {set(drawn) - names}"
    for name, _ in MODULES:  # warning categories too
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, type) and issubclass(value, Warning) and value.__module__ == name:
                assert name.endswith("errors"), f"{value.__qualname__} is defined in {name}"


def test_the_remote_client_loads_no_database_machinery():
    code = ("import json, sys, time\n"
            "start = time.perf_counter()\n"
            "import headwater.client\n"
            "api = headwater.client.Api(url='http://127.0.0.1:9', api_key='hw_0123456789ab_x', cache=False)\n"
            "heavy = ('sqlalchemy', 'alembic', 'psycopg', 'fastapi', 'uvicorn', 'torch')\n"
            "loaded = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy})\n"
            "print(json.dumps({'seconds': time.perf_counter() - start, 'loaded': loaded}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    result = json.loads(done.stdout)
    assert result["loaded"] == [], result
