"""The extension zip: built and validated by build.py, installed into a temporary Blender user folder, used."""

import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from geo4d.core.result import Intrinsics, Reconstruction

ROOT = Path(__file__).resolve().parents[1]

INSTALL_AND_IMPORT = """
import sys
import bpy

zip_path, result = sys.argv[1], sys.argv[2]
assert bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True
) == {"FINISHED"}
operator = bpy.types.GEO4D_OT_import_result
print("module", operator.__module__)
assert bpy.ops.geo4d.import_result(directory=result, storage="PACKED") == {"FINISHED"}
points = [obj for obj in bpy.data.objects if obj.get("geo4d_role") == "points"][0]
print("points", len(points.data.vertices))
"""


def build_zip(output: Path) -> Path:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--output-dir", str(output)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    (zip_path,) = output.glob("*.zip")
    return zip_path


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    return build_zip(tmp_path_factory.mktemp("dist"))


def test_zip_has_the_package_shape(extension_zip):
    names = set(zipfile.ZipFile(extension_zip).namelist())
    assert {"blender_manifest.toml", "__init__.py", "registration.py", "scene_builder.py"} <= names
    assert {"core/result.py", "operators/import_result.py", "ui/menus.py"} <= names
    assert not [
        name for name in names if "__pycache__" in name or name.startswith(("tests/", "geo4d_blender/"))
    ]


def test_installed_extension_imports_a_result(extension_zip, tmp_path):
    depth = np.full((2, 6, 8), 3.0, dtype=np.float32)
    Reconstruction(
        camera_to_world=np.tile(np.eye(4), (2, 1, 1)),
        intrinsics=Intrinsics(10.0, 10.0, 4.0, 3.0),
        depth=depth,
        confidence=np.ones_like(depth),
        color=np.zeros((2, 6, 8, 3), dtype=np.uint8),
        fps=25.0,
    ).save(tmp_path / "result")
    environment = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"))
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(INSTALL_AND_IMPORT),
            str(extension_zip),
            str(tmp_path / "result"),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "module bl_ext.user_default.geo4d.operators.import_result" in completed.stdout
    assert "points 96" in completed.stdout
    assert (
        tmp_path / "blender-user" / "extensions" / "user_default" / "geo4d" / "scene_builder.py"
    ).is_file()


def load_build_script():
    """build.py as a module (it is a script at the repository root, not part of the package)."""
    spec = importlib.util.spec_from_file_location("geo4d_build_script", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_fails_clearly_on_an_invalid_manifest(tmp_path):
    build = load_build_script()
    source = minimal_source(tmp_path / "source")
    manifest = (ROOT / "blender_manifest.toml").read_text()
    (source / "blender_manifest.toml").write_text(manifest.replace('id = "geo4d"', 'id = "geo 4d!"'))
    with pytest.raises(build.BuildError, match="validate failed"):
        build.build(tmp_path / "dist", source)
    assert not list((tmp_path / "dist").glob("*.zip"))


def minimal_source(folder: Path) -> Path:
    """The extension's folders with empty packages and the real manifest: builds in a second."""
    for name in ("geo4d_blender", "core", "operators", "ui"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text("")
    (folder / "blender_manifest.toml").write_text((ROOT / "blender_manifest.toml").read_text())
    return folder


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "/"
        for path in sorted(folder.rglob("*"))
    }


def test_build_replaces_only_a_zip_of_its_own(tmp_path):
    build = load_build_script()
    source = minimal_source(tmp_path / "source")
    dist = tmp_path / "dist"
    first = build.build(dist, source)
    assert build.build(dist, source) == first and [path.name for path in dist.iterdir()] == [first.name]
    for foreign in (b"a user's own archive", zip_bytes({"notes.txt": "mine"})):
        first.write_bytes(foreign)
        before = tree_hashes(tmp_path)
        with pytest.raises(build.BuildError, match=r"exists and is not a Geo4D extension zip Geo4D wrote"):
            build.build(dist, source)
        assert tree_hashes(tmp_path) == before


def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.mark.parametrize("inside", ["core", "wheels"])
def test_build_never_writes_into_its_sources_or_wheels(tmp_path, inside):
    build = load_build_script()
    source = minimal_source(tmp_path / "source")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "einops-0.8.0-py3-none-any.whl").write_bytes(zip_bytes({"einops/__init__.py": ""}))
    before = tree_hashes(tmp_path)
    output = source / "core" if inside == "core" else wheels
    with pytest.raises(build.BuildError, match=r"lies inside the input folder"):
        build.build(output, source, [wheels / "einops-0.8.0-py3-none-any.whl"])
    assert tree_hashes(tmp_path) == before


def test_build_refuses_a_file_as_its_output_folder(tmp_path):
    build = load_build_script()
    source = minimal_source(tmp_path / "source")
    (tmp_path / "dist").write_text("a user's file called dist")
    before = tree_hashes(tmp_path)
    with pytest.raises(build.BuildError, match=r"dist is a file. Choose a folder for the zip"):
        build.build(tmp_path / "dist", source)
    assert tree_hashes(tmp_path) == before
