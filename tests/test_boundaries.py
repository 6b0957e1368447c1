"""The package boundaries: core never needs Blender, the Blender side never needs torch or diffusers."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORT_ALL = """
import importlib, pkgutil, sys
for blocked in {blocked!r}:
    sys.modules[blocked] = None  # makes `import blocked` raise ImportError
package = importlib.import_module({package!r})
names = [info.name for info in pkgutil.walk_packages(package.__path__, {package!r} + ".")]
names = [name for name in names if not name.startswith({skip!r})]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def import_all(package: str, blocked: list[str], skip: str) -> int:
    """Import every module under `package` (except those starting with `skip`) with `blocked` unimportable."""
    code = textwrap.dedent(IMPORT_ALL).format(package=package, blocked=blocked, skip=skip)
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    return int(completed.stdout.split()[-1])


def test_every_core_module_imports_without_blender():
    assert import_all("geo4d.core", ["bpy", "mathutils", "bpy_extras"], skip="\0") > 5


@pytest.mark.parametrize("package", ["geo4d", "geo4d.operators", "geo4d.ui"])
def test_blender_side_imports_without_torch(package):
    # Core modules are reached only through what the Blender side itself imports.
    assert import_all(package, ["torch", "diffusers"], skip="geo4d.core") >= 0


def relative_imports(folder: Path) -> dict[str, set[str]]:
    """Each module file under `folder` -> the relative modules it imports ("..core.errors" as "core.errors")."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                module = node.module or ""
                names |= {module} if module else {alias.name for alias in node.names}
                names |= {f"{module}.{alias.name}" for alias in node.names if module}
        found[str(path.relative_to(ROOT))] = names
    return found


def test_panels_reach_the_engine_only_through_blender_side_helpers():
    reached = {
        path: sorted(n for n in names if n.startswith("core"))
        for path, names in relative_imports(ROOT / "ui").items()
    }
    assert all(not names for names in reached.values()), reached


def test_the_blender_side_speaks_to_the_worker_only_through_its_protocol_and_parent():
    allowed = {"core.worker.protocol", "core.worker.parent"}
    for folder in ("geo4d_blender", "operators", "ui"):
        for path, names in relative_imports(ROOT / folder).items():
            worker = {name for name in names if name.startswith("core.worker")}
            assert all(any(name.startswith(module) for module in allowed) for name in worker), (path, worker)
