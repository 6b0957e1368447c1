"""The alignment's settings, and the weight it leaves a window it does not trust."""

from __future__ import annotations

from dataclasses import dataclass

# Weight of a window flagged as garbage: it stays in the sums (so every frame keeps a value) but counts
# for next to nothing.
GARBAGE_WEIGHT = 1e-3


@dataclass(frozen=True)
class AlignConfig:
    """Settings of the alignment.

    solver_pixels: pixels per frame used by the solve (a regular subgrid); full resolution only at the end.
    rounds: outer rounds of (fuse points, refit window similarities). pose_steps: orthogonal-iteration
    steps for the per-frame poses and focal. robust_width: Cauchy width in robust standard deviations.
    garbage_ratio, garbage_floor: a window whose relative misfit exceeds garbage_ratio x the median
    window's and garbage_floor is garbage. disparity_weight: weight of disparity depth against point-map
    depth in the final fusion. sky_tolerance: decode tolerance around the invalid value 1.05.
    min_frame_points: fewest valid solver pixels that pose a frame; frames with fewer are interpolated.
    """

    solver_pixels: int = 4096
    rounds: int = 3
    pose_steps: int = 12
    robust_width: float = 3.0
    garbage_ratio: float = 4.0
    garbage_floor: float = 0.05
    disparity_weight: float = 1.0
    sky_tolerance: float = 0.1
    min_frame_points: int = 12

    def __post_init__(self) -> None:
        limits = {
            "solver_pixels": (64, 1 << 22),
            "rounds": (1, 100),
            "pose_steps": (1, 1000),
            "robust_width": (0.5, 100.0),
            "garbage_ratio": (1.0, 1000.0),
            "garbage_floor": (0.0, 10.0),
            "disparity_weight": (0.0, 100.0),
            "sky_tolerance": (0.0, 0.5),
            "min_frame_points": (3, 1 << 20),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"AlignConfig.{name} = {value} is out of range; allowed [{low}, {high}].")
