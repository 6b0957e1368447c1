"""The shots of a batch job: the videos of a folder, the lines of a list file, or a .blend's movie strips."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import Geo4DError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mxf", ".mpg", ".mpeg")
# Seconds Blender's Python may take to open a .blend and list its movie strips.
BLEND_TIMEOUT = 300.0


@dataclass(frozen=True)
class Shot:
    """One video of a job: where its result goes, and its frame range (None: the settings' range)."""

    name: str
    video: Path
    output: Path
    start: int | None = None
    end: int | None = None


def list_shots(source: str | Path, output: str | Path) -> list[Shot]:
    """The shots named by `source` (a folder of videos, a text file with one video path a line, `#` comments
    allowed and paths relative to the file, or a .blend), each writing to its own folder under `output`."""
    source = Path(source)
    if source.is_dir():
        videos = sorted(path for path in source.iterdir() if path.suffix.lower() in VIDEO_SUFFIXES)
        found = [(path.stem, path, None, None) for path in videos]
    elif source.suffix.lower() == ".blend":
        found = _blend_strips(source)
    elif source.is_file():
        found = [(path.stem, path, None, None) for path in _listed_videos(source)]
    else:
        raise Geo4DError(
            f"SHOTS = {source} does not exist; give a folder of videos, a text file listing videos, or a .blend."
        )
    if not found:
        raise Geo4DError(
            f"SHOTS = {source} names no video (looked for {', '.join(VIDEO_SUFFIXES)}); add videos or list them."
        )
    shots, names = [], set()
    for name, video, start, end in found:
        unique, number = name, 2
        while unique in names:
            unique, number = f"{name}-{number}", number + 1
        names.add(unique)
        shots.append(Shot(unique, Path(video), Path(output) / unique, start, end))
    return shots


def _listed_videos(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise Geo4DError(f"SHOTS = {path} cannot be read as a text list of videos ({error}).") from error
    lines = [line.strip() for line in text.splitlines()]
    return [(path.parent / line).resolve() for line in lines if line and not line.startswith("#")]


def _blend_strips(path: Path) -> list[tuple[str, Path, int, int]]:
    """The movie strips of a .blend, read by Blender's Python (bpy) in a child process: (strip name, movie,
    first movie frame shown, movie frame after the last shown)."""
    if not path.is_file():
        raise Geo4DError(f"SHOTS = {path} does not exist; give the path of a saved .blend.")
    command = [sys.executable, "-m", "geo4d.blend_shots", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BLEND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as error:
        raise Geo4DError(
            f"Reading the movie strips of {path} took over {BLEND_TIMEOUT:.0f} s; try again."
        ) from error
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise Geo4DError(f"The movie strips of {path} could not be read: {last}")
    lines = done.stdout.strip().splitlines()  # the JSON is the last line, whatever Blender printed before
    if not lines:
        raise Geo4DError(
            f"Blender's Python listed no movie strips of {path}; open it in Blender to check it."
        )
    return [(name, Path(video), start, end) for name, video, start, end in json.loads(lines[-1])]
