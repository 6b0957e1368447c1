"""The output-folder contract: what Geo4D may write, replace or delete where a user names a path.

Every writer of a folder or file the user names goes through this module:
- it refuses, before any work, a target that is or contains the current folder or an input (video,
  checkpoint, dataset), a symbolic link, or a folder or file it cannot prove it wrote itself;
- it writes into a hidden staging folder (or file) beside the target and swaps it in by renames, so a
  failure or a cancel leaves the earlier output as it was and no staging behind;
- it deletes an earlier output only after checking, again, that every entry in it is one Geo4D writes.
A folder is provably ours when its marker file says so (a result's reconstruction.json with our format
and version) and every other entry matches the writer's layout; a user's added file makes it not ours.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import Geo4DError
from .motion_description import MOTION_NAME, STATIC_NAME
from .result_description import (
    DEPTH_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    FRAMES_DIR,
    JSON_NAME,
)

logger = logging.getLogger(__name__)

# Foreign entries named in a refusal; the rest are counted.
NAMED_ENTRIES = 6


@dataclass(frozen=True)
class Layout:
    """What one writer puts in a folder it owns.

    kind: what the folder is, for messages ("Geo4D result"). entries: fnmatch patterns of the relative
    paths it writes, '/'-separated; a folder's pattern ends in '/'. marker(folder): why the folder does
    not carry the writer's marker (a str), or the further entry patterns the marker vouches for (a
    tuple); None when the names alone identify the writer's folders.
    """

    kind: str
    entries: tuple[str, ...]
    marker: Callable[[Path], str | tuple[str, ...]] | None = None


def _result_marker(folder: Path) -> str | tuple[str, ...]:
    """A result's reconstruction.json must carry our format and version; a synthetic clip's result
    (core.synthetic.render) also holds the video it names by a bare file name."""
    path = folder / JSON_NAME
    if not path.is_file() or path.is_symlink():
        return f"it has no {JSON_NAME} of Geo4D's"
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"its {JSON_NAME} is not one Geo4D wrote (it cannot be parsed)"
    if (
        not isinstance(description, dict)
        or description.get("format") != FORMAT_NAME
        or description.get("version") != FORMAT_VERSION
    ):
        return f"its {JSON_NAME} is not one Geo4D wrote (no format '{FORMAT_NAME}' version {FORMAT_VERSION})"
    source = description.get("source")
    video = source.get("video") if isinstance(source, dict) else None
    settings = description.get("settings")
    synthetic = isinstance(settings, dict) and "synthetic" in settings
    if synthetic and isinstance(video, str) and video and video == Path(video).name:
        return (glob.escape(video),)
    return ()


RESULT_LAYOUT = Layout(
    "Geo4D result",
    (JSON_NAME, DEPTH_NAME, MOTION_NAME, STATIC_NAME, f"{FRAMES_DIR}/", f"{FRAMES_DIR}/{'[0-9]' * 6}.ply"),
    _result_marker,
)


def foreign_entries(folder: Path, layout: Layout) -> tuple[str | None, list[str]]:
    """What makes the existing folder not provably the writer's: (why it lacks the marker or None,
    entries the writer does not write). (None, []) when it is the writer's, or empty.

    Entries are named relative to `folder`, a folder with a trailing '/' (its content not listed), a
    link with ' (a link)'.
    """
    patterns = layout.entries
    missing_marker = None
    if layout.marker is not None and not _is_empty(folder):
        vouched = layout.marker(folder)
        if isinstance(vouched, str):
            missing_marker = vouched
        else:
            patterns = patterns + vouched
    return missing_marker, _foreign(folder, "", patterns)


def _foreign(folder: Path, prefix: str, patterns: tuple[str, ...]) -> list[str]:
    """Entries under `folder` (named with `prefix`) that match none of `patterns`; links never do."""
    found = []
    with os.scandir(folder) as listing:
        for entry in sorted(listing, key=lambda e: e.name):
            name = prefix + entry.name
            if entry.is_symlink():
                found.append(f"{name} (a link)")
            elif entry.is_dir(follow_symlinks=False):
                if _matches(name + "/", patterns):
                    found += _foreign(Path(entry.path), name + "/", patterns)
                else:
                    found.append(name + "/")
            elif not (entry.is_file(follow_symlinks=False) and _matches(name, patterns)):
                found.append(name)
    return found


def _is_empty(folder: Path) -> bool:
    with os.scandir(folder) as listing:
        return next(listing, None) is None


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED_ENTRIES])
    return shown + (f" and {len(names) - NAMED_ENTRIES} more" if len(names) > NAMED_ENTRIES else "")


def protected_reason(target: Path, inputs: Iterable[str | Path] = ()) -> str | None:
    """Why Geo4D must not write into, replace or delete `target`, or None.

    Protected: the current folder, every existing input, every folder above them and everything inside an
    input folder such as a dataset (paths compared after resolving symbolic links and '..', and as typed,
    so a link to an input inside target counts too).
    """
    resolved = target.resolve()
    current = Path.cwd().resolve()
    if resolved == current:
        return f"is the current folder ({current})"
    if resolved in current.parents:
        return f"holds the current folder ({current})"
    for path in inputs:
        path = Path(path)
        if not os.path.lexists(path):
            continue  # nothing there to protect (a model name such as "tiny")
        for form in {Path(os.path.abspath(path)), path.resolve()}:
            if resolved == form:
                return f"is the input {path}"
            if resolved in form.parents:
                return f"holds the input {path}"
            if form in resolved.parents and form.is_dir():
                return f"lies inside the input folder {path}"
    return None


def check_output_folder(target: str | Path, layout: Layout, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse, before any work, a folder target the writer of `layout` must not replace; returns it as a Path.

    Allowed: a new folder, an empty one, or an earlier folder of the writer's that holds nothing else.
    """
    target = Path(target)
    reason = protected_reason(target, inputs)
    if reason is not None:
        raise Geo4DError(
            f"The output folder {target} {reason}: Geo4D never writes into, replaces or deletes such a "
            "folder. Choose a new folder for the output."
        )
    if target.is_symlink():
        raise Geo4DError(
            f"The output folder {target} is a symbolic link; Geo4D does not replace links. "
            "Give the real folder's path, or a new folder."
        )
    if target.exists() and not target.is_dir():
        raise Geo4DError(f"{target} is a file, not a folder. Choose a folder for the output.")
    if target.is_dir():
        _refuse_foreign(target, layout)
    return target


def _refuse_foreign(target: Path, layout: Layout) -> None:
    try:
        missing_marker, names = foreign_entries(target, layout)
    except OSError as error:
        raise Geo4DError(f"Cannot read the output folder {target}: {error.strerror}.") from error
    reasons = [missing_marker] if missing_marker else []
    if names:
        reasons.append(f"it holds files Geo4D did not write ({_listed(names)})")
    if reasons:
        advice = "Choose an empty or new folder" + (", or move those files elsewhere." if names else ".")
        raise Geo4DError(
            f"{target} is not an earlier {layout.kind} folder, so it is not replaced: {'; '.join(reasons)}. "
            f"Geo4D never deletes what it did not write. {advice}"
        )


def check_result_folder(output: str | Path, video: str | Path | None, model: object = None) -> Path:
    """check_output_folder for a reconstruction of `video` with `model` (a model setting: a name, a
    checkpoint path or "model.ckpt,vae.ckpt"; a loaded model names no file) into the result folder `output`."""
    inputs = [video] if video is not None else []
    if isinstance(model, str | Path):
        inputs += [part for part in str(model).split(",") if part]
    return check_output_folder(output, RESULT_LAYOUT, inputs)


def write_folder(
    target: str | Path, layout: Layout, write: Callable[[Path], None], inputs: Iterable[str | Path] = ()
) -> Path:
    """Write a folder by `write(staging)` and swap it in for `target`; returns target.

    The staging folder is hidden beside target. An earlier folder is renamed aside, the new one renamed
    in, and the old one removed only after it is checked again to hold nothing but the writer's entries.
    Any failure (OSError as a Geo4DError, a cancel, Ctrl-C) leaves the earlier folder intact and no
    staging behind.
    """
    inputs = tuple(inputs)
    target = check_output_folder(target, layout, inputs)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
        staging.chmod(0o777 & ~_current_umask())  # mkdtemp makes it private; an output is an ordinary folder
    except OSError as error:
        raise Geo4DError(
            f"Cannot write to {target.parent}: {error.strerror}. Choose a writable folder."
        ) from error
    aside = staging.with_name(staging.name.removesuffix(".staging") + ".replaced")
    try:
        write(staging)
        if target.exists() or target.is_symlink():
            check_output_folder(target, layout, inputs)  # a user may have added files while the work ran
            os.rename(target, aside)
            try:
                os.rename(staging, target)
            except BaseException:
                os.rename(aside, target)
                raise
        else:
            os.rename(staging, target)
    except OSError as error:
        raise Geo4DError(f"Cannot write {target}: {error.strerror or error}. Nothing was changed.") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if aside.exists():
        _remove_replaced(aside, target, layout)
    return target


def _remove_replaced(aside: Path, target: Path, layout: Layout) -> None:
    """Delete the earlier folder renamed aside, unless something not ours appeared in it meanwhile."""
    missing_marker, names = foreign_entries(aside, layout)
    if missing_marker or names:
        logger.warning("The earlier %s was kept as %s: %s.", target, aside, missing_marker or _listed(names))
        return
    shutil.rmtree(aside)


def check_output_file(
    target: str | Path, is_ours: Callable[[Path], bool] | None, kind: str, inputs: Iterable[str | Path] = ()
) -> Path:
    """Refuse, before any work, a file target that is an input, a link, a folder, or a file that
    `is_ours` does not recognise as an earlier output of the writer (a `kind`, for messages).

    is_ours None: the file lies in a folder of the writer's layout that check_output_folder accepted,
    which vouches for every file of that name in it.
    """
    target = Path(target)
    reason = protected_reason(target, inputs)
    if reason is not None:
        raise Geo4DError(
            f"The output {target} {reason}; Geo4D never writes there. Choose a new file name in another folder."
        )
    if target.is_symlink():
        raise Geo4DError(
            f"The output {target} is a symbolic link; Geo4D does not replace links. Choose a new file name."
        )
    if target.is_dir():
        raise Geo4DError(f"The output {target} is a folder; give a file name.")
    if target.exists() and is_ours is not None and not is_ours(target):
        raise Geo4DError(
            f"{target} exists and is not a {kind} Geo4D wrote; Geo4D never overwrites what it did not "
            "write. Choose a new file name, or move that file."
        )
    return target


def write_file(
    target: str | Path,
    write: Callable[[Path], None],
    is_ours: Callable[[Path], bool] | None,
    kind: str,
    inputs: Iterable[str | Path] = (),
    backup: str | Path | None = None,
) -> Path:
    """Write a file by `write(partial)` to a hidden file beside target and rename it over target.

    The file appears complete or not at all; an existing target is replaced only when `is_ours` says
    the writer made it (checked before and again just before the rename; see check_output_file).
    backup: where the earlier target is kept (a copy renamed into place just before the swap, as Blender
    keeps NAME.blend1); an earlier file there must pass the same checks as the target.
    """
    target = check_output_file(target, is_ours, kind, inputs)
    if backup is not None:
        backup = check_output_file(backup, is_ours, kind, inputs)
    partial = _partial_beside(target)
    try:
        write(partial)
        partial.chmod(0o666 & ~_current_umask())
        check_output_file(target, is_ours, kind)
        if backup is not None and target.exists():
            _keep_copy(target, check_output_file(backup, is_ours, kind))
        os.replace(partial, target)
    except OSError as error:
        raise Geo4DError(f"Cannot write {target}: {error.strerror or error}. Nothing was changed.") from error
    finally:
        partial.unlink(missing_ok=True)
    return target


def _partial_beside(target: Path) -> Path:
    """A new empty hidden file in target's folder, to be renamed over target."""
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        os.close(handle)
    except OSError as error:
        raise Geo4DError(
            f"Cannot write to {target.parent}: {error.strerror}. Choose a writable folder."
        ) from error
    return Path(name)


def _keep_copy(source: Path, backup: Path) -> None:
    """Copy `source` to `backup` whole or not at all (a hidden copy renamed into place)."""
    partial = _partial_beside(backup)
    try:
        shutil.copy2(source, partial)
        os.replace(partial, backup)
    finally:
        partial.unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_format_is(format_name: str) -> Callable[[Path], bool]:
    """An is_ours for check_output_file/write_file: the file is a JSON object whose "format" is
    `format_name` (the marker a writer of a single report puts in it)."""

    def is_ours(path: Path) -> bool:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        return isinstance(document, dict) and document.get("format") == format_name

    return is_ours


def write_json_report(target: str | Path, report: dict, kind: str, inputs: Iterable[str | Path] = ()) -> Path:
    """write_file for a JSON report carrying its writer's marker report["format"]: an earlier file is
    replaced only when it carries the same marker. Call check_json_report before the work."""
    text = json.dumps(report, indent=2) + "\n"
    return write_file(
        target,
        lambda partial: partial.write_text(text, encoding="utf-8"),
        json_format_is(report["format"]),
        kind,
        inputs,
    )


def check_json_report(
    target: str | Path, format_name: str, kind: str, inputs: Iterable[str | Path] = ()
) -> Path:
    """check_output_file for write_json_report's target, before any work; its folder must exist."""
    target = check_output_file(target, json_format_is(format_name), kind, inputs)
    if not target.parent.is_dir():
        raise Geo4DError(f"The folder {target.parent} does not exist. Create it or choose another path.")
    return target
