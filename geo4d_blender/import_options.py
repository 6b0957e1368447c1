"""How a reconstruction is brought into Blender: the options of the import builders, validated when built."""

from __future__ import annotations

from dataclasses import dataclass

from .core.errors import SettingError
from .core.limits import check_choice, check_integer, check_number

STORAGE_MODES = ("STREAMED", "PACKED")
# "FULL": one animated cloud of the frame files as they are; "SPLIT": a result's static cloud as a `Set`
# object beside an animated `Moving` object (results reconstructed with --points split).
POINT_MODES = ("FULL", "SPLIT")
# Blender's own limit on scene frame numbers.
MAX_FRAME = 1048574


@dataclass(frozen=True)
class ImportOptions:
    """Options of one import.

    frame_start: timeline frame F that shows the result's first frame (frame k shows at F + k).
    storage: "STREAMED" reads each frame's PLY from the result folder through geometry nodes (tiny .blend);
        "PACKED" stores every point in the .blend (one mesh with an int `frame` attribute, portable).
    point_size: diameter of a point in pixels of the footage as seen from that frame's camera; the point
        radius grows with distance from the camera so that the cloud looks solid through it.
    point_radius: a fixed radius in scene units instead of the depth-scaled size; 0 keeps the scaled size.
    relative_to: the folder the .blend will be saved in, to store paths relative to it ("//...");
        None uses the open .blend's folder once it has been saved, and absolute paths before that.
    points: "SPLIT" builds a split result as a static `Set` object and an animated `Moving` object;
        "FULL" builds one animated cloud of the frame files (what results without a static cloud get).
    """

    frame_start: int = 1
    storage: str = "STREAMED"
    point_size: float = 1.0
    point_radius: float = 0.0
    relative_to: str | None = None
    points: str = "FULL"

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_integer(owner, "frame_start", self.frame_start, 0, MAX_FRAME)
        check_choice(owner, "storage", self.storage, STORAGE_MODES)
        check_choice(owner, "points", self.points, POINT_MODES)
        check_number(owner, "point_size", self.point_size, 0.0, 1000.0, "a number in (0, 1000] pixels", False)
        check_number(
            owner,
            "point_radius",
            self.point_radius,
            0.0,
            float("inf"),
            "0 (depth-scaled) or a finite size > 0",
        )
        if self.relative_to is not None and not isinstance(self.relative_to, str):
            raise SettingError(owner, "relative_to", self.relative_to, "None or a folder path")
