"""Reading a movie strip: its file, and which movie frames its visible timeline frames show.

Timeline frame f of a movie strip shows movie frame f - strip.frame_start (0-based), also when the movie's
fps differs from the scene's; trims only change the visible range. Movie frame k is the picture
core.movie_timing describes (on variable frame-rate footage a picture may repeat or be skipped); the worker
reads frame k by the same rule, so a result's source frames are the strip's movie frames one for one and the
movie's frame count is strip.frame_duration. Strips whose frames do not follow that rule (retimed, reversed,
strobed, behind a speed effect) are refused with a clear message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import bpy

from .blender_compat import all_strips
from .core.errors import Geo4DError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StripFrames:
    """A movie strip's footage and range. movie_start/movie_end: 0-based movie frames, end exclusive.

    timeline_start is the timeline frame that shows movie_start (timeline = movie + strip.frame_start).
    """

    scene_name: str
    strip_name: str
    video: Path
    movie_fps: float
    movie_start: int
    movie_end: int
    strip_frame_start: int

    @property
    def timeline_start(self) -> int:
        return self.movie_start + self.strip_frame_start

    @property
    def timeline_end(self) -> int:
        """Last timeline frame shown, inclusive."""
        return self.movie_end - 1 + self.strip_frame_start

    @property
    def num_frames(self) -> int:
        return self.movie_end - self.movie_start


def find_strip(scene: bpy.types.Scene, name: str = "") -> bpy.types.Strip:
    """The strip called `name` in `scene` (any meta-strip depth), or the active strip when name is empty."""
    editor = scene.sequence_editor
    if name:
        strip = all_strips(editor).get(name) if editor else None
        if strip is None:
            raise Geo4DError(
                f"The scene '{scene.name}' has no strip named '{name}'. Check the name in the Sequencer."
            )
        return strip
    strip = editor.active_strip if editor else None
    if strip is None:
        raise Geo4DError(
            f"No strip is selected in the scene '{scene.name}'. Click a movie strip in the Sequencer, or "
            "give the strip's name."
        )
    return strip


def strip_video(strip: bpy.types.Strip) -> Path:
    """The movie file of a movie strip, refused when it is another kind of strip or the file is unusable."""
    if strip.type != "MOVIE":
        kind = {"SOUND": "a sound", "IMAGE": "an image", "SCENE": "a scene"}.get(
            strip.type, f"a {strip.type}"
        )
        raise Geo4DError(f"The strip '{strip.name}' is {kind} strip. Geo4D reconstructs movie strips only.")
    video = Path(bpy.path.abspath(strip.filepath, library=strip.id_data.library)).resolve()
    if not video.is_file():
        raise Geo4DError(
            f"The movie of the strip '{strip.name}' is missing: {video}. Relink the strip to its file "
            "(Strip > Movie Strip > File Path) and try again."
        )
    if strip.fps <= 0:
        raise Geo4DError(
            f"Blender cannot read the movie of the strip '{strip.name}' ({video}): the file is damaged or in "
            "an unsupported format. Re-export it (for example as H.264 MP4) and add it again."
        )
    return video


def strip_problem(strip: bpy.types.Strip) -> str:
    """Why the strip cannot be reconstructed, in its first sentence for a panel line; empty when it can."""
    try:
        strip_video(strip)
    except Geo4DError as error:
        return str(error).split(". ")[0]
    return ""


def _check_timing(scene: bpy.types.Scene, strip: bpy.types.Strip) -> None:
    """Refuse strips whose timeline frames are not the movie's frames one by one."""
    if strip.use_reverse_frames:
        raise Geo4DError(
            f"The strip '{strip.name}' plays its frames in reverse. Turn off 'Reverse Frames' for the "
            "reconstruction (the camera follows the movie's own order)."
        )
    if strip.strobe > 1.0:
        raise Geo4DError(
            f"The strip '{strip.name}' has Strobe {strip.strobe:g}. Set Strobe to 1 before reconstructing."
        )
    keys = [key.timeline_frame for key in strip.retiming_keys]
    if len(keys) > 2 or (len(keys) == 2 and keys[1] - keys[0] != strip.frame_duration):
        raise Geo4DError(
            f"The strip '{strip.name}' is retimed (speed changes). Reset its retiming "
            "(Strip > Retiming > Reset) before reconstructing."
        )
    speed = [
        effect.name
        for effect in all_strips(scene.sequence_editor)
        if effect.type == "SPEED" and getattr(effect, "input_1", None) == strip
    ]
    if speed:
        raise Geo4DError(
            f"The strip '{strip.name}' is retimed by the speed effect '{speed[0]}'. Reconstruct the strip "
            "without it (remove or mute the effect)."
        )


def read_strip(
    scene: bpy.types.Scene, strip: bpy.types.Strip, frame_range: tuple[int, int] | None = None
) -> StripFrames:
    """The footage of `strip` over its visible range, or over the timeline frames `frame_range` (inclusive).

    The range must lie within the strip's visible frames. Fewer frames than one 16-frame window are
    padded by the pipeline, which then warns.
    """
    video = strip_video(strip)
    _check_timing(scene, strip)
    origin = round(strip.frame_start)
    visible = (strip.frame_final_start, strip.frame_final_end - 1)
    first, last = frame_range if frame_range is not None else visible
    if first > last or first < visible[0] or last > visible[1]:
        raise Geo4DError(
            f"Frames {first}..{last} are not within the visible frames {visible[0]}..{visible[1]} of the "
            f"strip '{strip.name}'. Choose a range inside the strip."
        )
    if first - origin < 0:
        raise Geo4DError(
            f"The strip '{strip.name}' starts before its movie's first frame. Reset its offsets."
        )
    frames = StripFrames(
        scene_name=scene.name,
        strip_name=strip.name,
        video=video,
        movie_fps=float(strip.fps),
        movie_start=first - origin,
        movie_end=last + 1 - origin,
        strip_frame_start=origin,
    )
    logger.info(
        "Strip '%s': timeline %d..%d = movie frames %d..%d of %s.",
        strip.name,
        frames.timeline_start,
        frames.timeline_end,
        frames.movie_start,
        frames.movie_end - 1,
        video,
    )
    return frames


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base
