"""The Ray Address preference: a strip job carries it to the worker, which then becomes the Ray driver."""

from __future__ import annotations

import pytest
from movie_strips import add_movie_strip, write_clip

from geo4d import strip_job
from geo4d.preferences import Geo4DPreferences, SetupChoice
from geo4d.strip_job import StripJob, StripSettings


@pytest.mark.parametrize("address", ["", "auto"])
def test_a_strip_job_carries_the_ray_address_and_keeps_its_cache_fingerprint(
    scene, tmp_path, monkeypatch, address
):
    strip = add_movie_strip(scene, write_clip(tmp_path / "clip"))
    monkeypatch.setattr(strip_job, "setup_choice", lambda: SetupChoice(ray_address=address))
    job = StripJob(scene, strip, StripSettings(model="tiny", result_folder=str(tmp_path / "result")))
    assert job.job.get("ray") == (address or None)
    assert "ray" not in job.fingerprint  # the same result with or without a cluster: the cache still holds
    assert "ray_address" in Geo4DPreferences.__annotations__
