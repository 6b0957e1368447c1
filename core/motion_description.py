"""The "motion" entry of reconstruction.json: motion scores, and the static cloud of a split result."""

from __future__ import annotations

from dataclasses import dataclass

from .json_checks import checked_integer, checked_object, checked_real, shown

# Optional files: per-pixel motion scores, and the fused static cloud of a split result.
MOTION_NAME = "motion.npz"
STATIC_NAME = "static.ply"
# What each frame's PLY holds: every point, or (split results) only the moving ones.
FRAME_CONTENTS = ("all", "moving")
# The most points one static.ply may hold (core.ply's limit per file).
MAX_STATIC_POINTS = 50_000_000


@dataclass(frozen=True)
class MotionDescription:
    """The "motion" entry: per-pixel motion scores in motion.npz and, for a split result, the static cloud.

    threshold: score (0..1) from which a pixel counts as moving. frames: "all" (each frame's PLY holds every
    point) or "moving" (only its moving points; the static ones are fused into static.ply). static_points:
    the points of static.ply, None when frames is "all". camera_baseline: the camera positions' span over
    the median depth (tiny: the camera barely moves and the masks are weak).
    """

    threshold: float
    frames: str = "all"
    static_points: int | None = None
    camera_baseline: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", checked_real(self.threshold, "motion.threshold", 0.0, 1.0))
        if self.frames not in FRAME_CONTENTS:
            raise ValueError(f"motion.frames is {shown(self.frames)}; it must be 'all' or 'moving'")
        if self.frames == "moving":
            count = checked_integer(self.static_points, "motion.static_points", 0, MAX_STATIC_POINTS)
            object.__setattr__(self, "static_points", count)
        elif self.static_points is not None:
            raise ValueError(
                f"motion.static_points is {shown(self.static_points)} but motion.frames is 'all'; "
                "only a split result (frames 'moving') has a static cloud"
            )
        baseline = checked_real(self.camera_baseline, "motion.camera_baseline", low=0.0)
        object.__setattr__(self, "camera_baseline", baseline)

    @property
    def split(self) -> bool:
        """The frames hold only moving points and static.ply the rest."""
        return self.frames == "moving"

    def to_json(self) -> dict:
        return {
            "threshold": self.threshold,
            "frames": self.frames,
            "static_points": self.static_points,
            "camera_baseline": self.camera_baseline,
        }


def read_motion(value: object) -> MotionDescription | None:
    """The optional "motion" entry (results written before motion masks have none)."""
    if value is None:
        return None
    entry = checked_object(value, "motion", ("threshold", "frames"))
    return MotionDescription(
        entry["threshold"], entry["frames"], entry.get("static_points"), entry.get("camera_baseline", 0.0)
    )
