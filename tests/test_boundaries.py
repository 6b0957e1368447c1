"""The package boundaries: core never needs Blender, the Blender side never needs torch or diffusers."""

import subprocess
import sys
import textwrap

import pytest

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
