"""Bad arguments to geo4d.reconstruct_strip and its operator, and the strips' cache keys, with real bpy.

Every bad argument is refused with one line naming it as the caller typed it, before any worker starts:
no worker runs, no result folder appears, the scene is unchanged. Strips whose names clean alike get
their own cache folders, and a re-import replaces only its own scene's objects.
"""

import math
import shutil
import time
from pathlib import Path

import bpy
import pytest
from movie_strips import add_movie_strip, collection_names, write_clip

import geo4d
from geo4d.blender_commands import import_result as import_command
from geo4d.core.cli import main
from geo4d.core.errors import Geo4DError
from geo4d.core.settings import MAX_STRIDE
from geo4d.owned_data import RESULT_TAG
from geo4d.preferences import SetupChoice, strip_result_folder
from geo4d.scene_builder import import_result
from geo4d.strip_job import RUNNING

# (keyword, bad value) for geo4d.reconstruct_strip: wrong types, NaN/inf, out of range, wrong lengths.
BAD_SETTINGS = [
    ("frame_range", ("a", "b")),
    ("frame_range", (5,)),
    ("frame_range", (1, 2, 3)),
    ("frame_range", "10-20"),
    ("frame_range", (10.0, 20)),
    ("frame_range", (-1, 5)),
    ("point_size", math.nan),
    ("point_size", math.inf),
    ("point_size", 0),
    ("point_size", -2.0),
    ("point_size", "1"),
    ("point_size", True),
    ("stride", MAX_STRIDE + 1),
    ("stride", 0),
    ("stride", "4"),
    ("stride", 4.0),
    ("stride", True),
    ("stride", math.nan),
    ("steps", -1),
    ("steps", 1001),
    ("steps", "5"),
    ("seed", -1),
    ("seed", 2**63),
    ("points_per_frame", -1),
    ("points_per_frame", 1.5),
    ("device", "gpu"),
    ("device", None),
    ("precision", "fp8"),
    ("storage", "LOOSE"),
    ("points", "HALF"),
    ("size", (100, 64)),
    ("size", (64,)),
    ("size", (64, 64.0)),
    ("size", "512x320"),
    ("size", (0, 64)),
    ("size", (4096, 64)),
    ("timeout", math.nan),
    ("timeout", 0),
    ("timeout", -1.0),
    ("timeout", "5"),
    ("reuse_result", "yes"),
    ("model", 5),
    ("result_folder", 5),
    ("worker_python", None),
]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip"))


def refused_before_work(call, message: str, output: Path) -> str:
    """Run `call`, which must raise matching `message` within a second (Geo4DError; from an operator the
    RuntimeError of its error report, or Blender's TypeError/ValueError for a wrongly typed property), start
    no worker, write no result and leave every data-block as it was; returns the message."""
    before = collection_names()
    started = time.perf_counter()
    with pytest.raises((Geo4DError, RuntimeError, TypeError, ValueError), match=message) as raised:
        call()
    assert time.perf_counter() - started < 1.0
    assert not RUNNING and not output.exists()
    assert collection_names() == before
    text = str(raised.value).strip()
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize(("keyword", "value"), BAD_SETTINGS, ids=[f"{k}={v!r}" for k, v in BAD_SETTINGS])
def test_python_function_names_the_bad_keyword_before_any_work(scene, clip, tmp_path, keyword, value):
    add_movie_strip(scene, clip)
    output = tmp_path / "result"
    settings = {"model": "tiny", "result_folder": str(output), keyword: value}
    text = refused_before_work(
        lambda: geo4d.reconstruct_strip(scene, "shot", **settings),
        f"^geo4d.reconstruct_strip: {keyword} = ",
        output,
    )
    assert "Settings" not in text and "ImportOptions" not in text


def test_python_function_refuses_a_scene_that_is_not_one(scene, clip, tmp_path):
    add_movie_strip(scene, clip)
    refused_before_work(
        lambda: geo4d.reconstruct_strip("Scene", "shot", model="tiny"),
        "scene = 'Scene' is not a scene",
        tmp_path / "result",
    )


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"point_size": math.nan}, "^Error: point_size = nan is invalid"),
        ({"input_size": (100, 64)}, r"^Error: input_size = \(100, 64\) is invalid"),
        ({"stride": "4"}, "GEO4D_OT_reconstruct_strip.stride expected an int"),
        ({"frame_first": "a"}, "GEO4D_OT_reconstruct_strip.frame_first expected an int"),
        ({"seed": math.nan}, "GEO4D_OT_reconstruct_strip.seed expected an int"),
        ({"input_size": (64,)}, "should contain 2 items"),
    ],
    ids=["point_size-nan", "input_size-not-64", "stride-str", "frame_first-str", "seed-nan", "input_size-1"],
)
def test_operator_names_the_bad_property_before_any_work(scene, clip, tmp_path, properties, message):
    add_movie_strip(scene, clip)
    output = tmp_path / "result"
    refused_before_work(
        lambda: bpy.ops.geo4d.reconstruct_strip(
            strip="shot", model="tiny", result_folder=str(output), **properties
        ),
        message,
        output,
    )


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    ("users_file", "message"),
    [
        ("result/notes.txt", r"result is not an earlier Geo4D result folder, so it is not replaced"),
        ("result.geo4d-job.json", r"result.geo4d-job.json exists and is not a Geo4D job record Geo4D wrote"),
    ],
    ids=["in-the-folder", "as-the-job-record"],
)
def test_a_strip_result_beside_a_users_file_is_refused_before_the_worker(
    scene, clip, tmp_path, users_file, message
):
    add_movie_strip(scene, clip)
    (tmp_path / users_file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / users_file).write_text('{"notes": "a user\'s own"}')
    before, names = file_bytes(tmp_path), collection_names()
    started = time.perf_counter()
    with pytest.raises(Geo4DError, match=message):
        geo4d.reconstruct_strip(scene, "shot", model="tiny", result_folder=str(tmp_path / "result"))
    assert time.perf_counter() - started < 1.0 and not RUNNING
    assert file_bytes(tmp_path) == before and collection_names() == names


def test_import_operator_and_command_name_the_bad_option(scene, room_result, tmp_path, capsys):
    folder, _ = room_result
    output = tmp_path / "scene.blend"
    refused_before_work(
        lambda: bpy.ops.geo4d.import_result(directory=str(folder), point_size=math.nan),
        "^Error: point_size = nan is invalid",
        output,
    )
    argv = ["import", str(folder), "-o", str(output), "--point-size", "nan"]
    assert main([import_command], argv) == 1 and not output.exists()
    assert capsys.readouterr().err.strip().splitlines() == [
        "geo4d: error: --point-size = nan is invalid: it must be a number in (0, 1000] pixels. Change the option."
    ]


def test_the_stride_limit_is_the_same_on_every_surface(scene):
    assert scene.geo4d.bl_rna.properties["stride"].hard_max == MAX_STRIDE
    assert bpy.ops.geo4d.reconstruct_strip.get_rna_type().properties["stride"].hard_max == MAX_STRIDE


@pytest.mark.parametrize("names", [("Szene_ä", "Szene_ö"), ("shot.1", "shot_1"), ("a b", "a_b")])
def test_strips_whose_names_clean_alike_keep_their_own_results_and_objects(scene, tmp_path, names):
    choice = SetupChoice(cache_folder=str(tmp_path / "cache"))
    folders = [strip_result_folder(choice, scene.name, name) for name in names]
    assert folders[0] != folders[1]
    assert folders[0] == strip_result_folder(choice, scene.name, names[0])  # stable
    assert folders[0].name.startswith(bpy.path.clean_name(f"{scene.name}-{names[0]}"))  # readable
    assert strip_result_folder(choice, "Other", names[0]) != folders[0]
    # What StripJob.finish does for each strip: its result into its folder, imported into the scene.
    source = tmp_path / "source"
    write_clip(source, frames=4, width=32, height=24)
    for folder in folders:
        shutil.copytree(source, folder)
        import_result(folder, scene=scene)
    first = {obj.name for obj in bpy.data.objects if obj.get(RESULT_TAG) == str(folders[0])}
    import_result(folders[1], scene=scene)  # the second strip again: the first strip's objects stay
    assert {obj.name for obj in bpy.data.objects if obj.get(RESULT_TAG) == str(folders[0])} == first
    assert len(first) == 2


def test_reimport_in_a_scene_leaves_a_copied_scenes_objects(scene, tmp_path):
    folder = tmp_path / "result"
    write_clip(folder, frames=4, width=32, height=24)
    import_result(folder, scene=scene)
    bpy.ops.scene.new(type="FULL_COPY")
    copy = bpy.context.scene
    assert copy != scene
    copied = {obj.name for obj in copy.objects if obj.get(RESULT_TAG) == str(folder)}
    assert len(copied) == 2
    import_result(folder, scene=scene)
    assert {obj.name for obj in copy.objects if obj.get(RESULT_TAG) == str(folder)} == copied
    assert len([obj for obj in scene.objects if obj.get(RESULT_TAG) == str(folder)]) == 2
