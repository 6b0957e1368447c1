"""The result cache's bookkeeping: which job made a result folder, so that an unchanged strip re-imports at once."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .core.errors import Geo4DError
from .core.output_folder import check_output_file, write_file
from .core.result import read_description, read_static_points
from .point_cloud_builder import check_frames

logger = logging.getLogger(__name__)

# Beside each result folder: the fingerprint of the job that wrote it.
JOB_RECORD_SUFFIX = ".geo4d-job.json"
JOB_RECORD_KIND = "Geo4D job record"
FINGERPRINT_KEYS = {"video", "model", "model_files", "settings"}


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


def is_job_record(path: Path) -> bool:
    """Whether `path` is a record record_job wrote: a JSON object with exactly a fingerprint's keys."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(recorded, dict) and recorded.keys() == FINGERPRINT_KEYS


def check_job_record(folder: Path, inputs: list[str | Path]) -> None:
    """Refuse, before the work, a result folder whose record path holds a file Geo4D did not write."""
    check_output_file(job_record_path(folder), is_job_record, JOB_RECORD_KIND, inputs)


def record_job(folder: Path, fingerprint: dict) -> None:
    """Write the fingerprint beside a finished result, whole or not at all (core.output_folder.write_file)."""
    text = json.dumps(fingerprint, indent=1)
    write_file(
        job_record_path(folder),
        lambda partial: partial.write_text(text, encoding="utf-8"),
        is_job_record,
        JOB_RECORD_KIND,
    )


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
