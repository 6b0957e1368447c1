"""The result cache's bookkeeping: which job made a result folder, so that an unchanged strip re-imports at once."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .core.errors import Geo4DError
from .core.result import read_description, read_static_points
from .point_cloud_builder import check_frames

logger = logging.getLogger(__name__)

# Beside each result folder: the fingerprint of the job that wrote it.
JOB_RECORD_SUFFIX = ".geo4d-job.json"


def job_record_path(folder: Path) -> Path:
    return folder.with_name(folder.name + JOB_RECORD_SUFFIX)


def _file_stamp(path: str | Path) -> list:
    """[path, size in bytes, modification time in ns]: changes whenever the file is replaced or edited."""
    stat = os.stat(path)
    return [str(path), stat.st_size, stat.st_mtime_ns]


def job_fingerprint(job: dict, model_files: list[Path]) -> dict:
    """What decides a result: the movie file, the model files and every reconstruction setting."""
    return {
        "video": _file_stamp(job["video"]),
        "model": job["model"],
        "model_files": [_file_stamp(path) for path in model_files if Path(path).is_file()],
        "settings": job["settings"],
    }


def record_job(folder: Path, fingerprint: dict) -> None:
    """Write the fingerprint beside a finished result (atomically: a temporary file renamed)."""
    path = job_record_path(folder)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(fingerprint, indent=1))
    os.replace(partial, path)


def cached_result_matches(folder: Path, fingerprint: dict) -> bool:
    """True when `folder` holds a complete, undamaged result written by a job with exactly this fingerprint.

    Every frame's PLY (and a split result's static.ply) is read and checked: a damaged one means the result
    is made afresh.
    """
    path = job_record_path(folder)
    try:
        recorded = json.loads(path.read_text())
        if recorded != json.loads(json.dumps(fingerprint)):
            return False
        description = read_description(folder)
        check_frames(folder, description.num_frames)
        if description.split:
            read_static_points(folder)
    except FileNotFoundError:
        return False
    except (OSError, json.JSONDecodeError, Geo4DError) as error:
        logger.warning("Not reusing the cached result in %s; it will be made again: %s", folder, error)
        return False
    return True
