"""Build the installable Blender extension zip into dist/ with the blender_ext.py that ships in the bpy wheel.

The zip has the package's shape: geo4d_blender's files at its root beside
blender_manifest.toml, and core/, operators/, ui/ as sub-packages. With --wheels DIR the zip also carries
the wheels in DIR (for example a CPU torch and the worker's other dependencies, downloaded once), listed
in the manifest's `wheels`; Blender installs those that fit its platform and Python when the add-on is
enabled, so the worker then runs in Blender's own Python with no network.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path

from geo4d.core.errors import Geo4DError
from geo4d.core.output_folder import check_output_file, write_file

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
MANIFEST = "blender_manifest.toml"
ROOT_PACKAGE = "geo4d_blender"
SUBPACKAGES = ("core", "operators", "ui")
WHEELS_DIR = "wheels"
EXTENSION_ID = "geo4d"
ZIP_KIND = "Geo4D extension zip"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


class BuildError(Exception):
    """The extension could not be validated or built; the message says why."""


def blender_ext_script() -> Path:
    """Path of blender_ext.py inside the installed bpy wheel (bpy/<version>/scripts/addons_core/bl_pkg/cli)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise BuildError(
            "The bpy module is not installed: run `make test` (or pip install bpy==5.0.1) first."
        )
    scripts = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not scripts:
        raise BuildError(
            f"No blender_ext.py found under {Path(spec.origin).parent}: the bpy install is incomplete."
        )
    return scripts[-1]


def stage(source: Path, staging: Path, wheels: Sequence[Path] = ()) -> None:
    """Copy the extension's files into the empty folder `staging` in the zip's layout, with `wheels`."""
    shutil.copytree(source / ROOT_PACKAGE, staging, ignore=_IGNORED, dirs_exist_ok=True)
    shutil.copy2(source / MANIFEST, staging / MANIFEST)
    for name in SUBPACKAGES:
        shutil.copytree(source / name, staging / name, ignore=_IGNORED)
    if wheels:
        (staging / WHEELS_DIR).mkdir()
        for wheel in wheels:
            shutil.copy2(wheel, staging / WHEELS_DIR / wheel.name)
        listed = ", ".join(f'"./{WHEELS_DIR}/{wheel.name}"' for wheel in wheels)
        manifest = staging / MANIFEST
        text = manifest.read_text(encoding="utf-8")
        # A top-level key: it goes before the first [table] (after it, TOML would put it in that table).
        table = text.find("\n[")
        head, tail = (text, "") if table < 0 else (text[: table + 1], text[table + 1 :])
        manifest.write_text(f"{head}wheels = [{listed}]\n{tail}", encoding="utf-8")


def find_wheels(folder: Path) -> list[Path]:
    """The .whl files in `folder`, refused when there are none (a mistyped folder would build without them)."""
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise BuildError(
            f"No .whl files in {folder}. Put the wheels to bundle there (pip download ... -d {folder})."
        )
    return wheels


def _run_blender_ext(*arguments: str) -> str:
    command = [sys.executable, str(blender_ext_script()), *arguments]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise BuildError(f"blender_ext.py {arguments[0]} failed:\n{completed.stdout}{completed.stderr}")
    return completed.stdout


def zip_name(source: Path) -> str:
    """The file name blender_ext.py gives the zip: the manifest's id and version ("geo4d-0.1.0.zip")."""
    try:
        manifest = tomllib.loads((source / MANIFEST).read_text(encoding="utf-8"))
        return f"{manifest['id']}-{manifest['version']}.zip"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError) as error:
        raise BuildError(
            f"{source / MANIFEST} has no readable id and version ({error}); fix the manifest."
        ) from error


def is_extension_zip(path: Path) -> bool:
    """Whether `path` is a zip this script built: a zip whose blender_manifest.toml has our id."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = tomllib.loads(archive.read(MANIFEST).decode("utf-8"))
    except (OSError, KeyError, UnicodeDecodeError, zipfile.BadZipFile, tomllib.TOMLDecodeError):
        return False
    return manifest.get("id") == EXTENSION_ID


def build(output_dir: Path, source: Path = ROOT, wheels: Sequence[Path] = ()) -> Path:
    """Validate the manifest and write the extension zip (with `wheels`) into output_dir; returns its path.

    By the output contract (core/output_folder.py), checked before the build: output_dir is not a source
    folder, the wheels' folder or inside them, and a file of the zip's name there is replaced only when
    it is an extension zip of ours. The zip is built in a temporary folder and renamed into place.
    """
    inputs = [source / name for name in (ROOT_PACKAGE, MANIFEST, *SUBPACKAGES)] + list(wheels)
    inputs += sorted({wheel.parent for wheel in wheels})
    name = zip_name(source)
    target = output_dir / name
    try:
        check_output_file(target, is_extension_zip, ZIP_KIND, inputs)
        if output_dir.exists() and not output_dir.is_dir():
            raise Geo4DError(f"--output-dir {output_dir} is a file. Choose a folder for the zip.")
        with tempfile.TemporaryDirectory(prefix="geo4d-extension-") as temporary:
            staging = Path(temporary) / "geo4d"
            stage(source, staging, wheels)
            _run_blender_ext("validate", str(staging))
            built = Path(temporary) / name
            _run_blender_ext("build", "--source-dir", str(staging), "--output-filepath", str(built))
            if not built.is_file():
                raise BuildError(f"blender_ext.py build reported success but wrote no {name}.")
            output_dir.mkdir(parents=True, exist_ok=True)
            write_file(
                target, lambda partial: shutil.copyfile(built, partial), is_extension_zip, ZIP_KIND, inputs
            )
    except Geo4DError as error:
        raise BuildError(str(error)) from error
    except OSError as error:
        raise BuildError(
            f"Cannot write {target}: {error.strerror or error}. Choose a writable folder."
        ) from error
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=ROOT / "dist",
        help="where the zip goes (default dist/); a zip of the same name there is replaced only when it is ours",
    )
    parser.add_argument(
        "--wheels", type=Path, help="bundle every .whl in this folder (listed in the manifest's `wheels`)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        wheels = find_wheels(args.wheels) if args.wheels else []
        path = build(args.output_dir.resolve(), wheels=wheels)
    except BuildError as error:
        print(f"build.py: error: {error}", file=sys.stderr)
        return 1
    print(f"Built {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
