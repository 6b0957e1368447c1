"""What the network gives the aligner for one window: decoded modality maps in their normalised encodings."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class WindowPrediction:
    """Decoded Geo4D output for one window of L frames at H x W (encodings in core.modalities).

    All maps are float32 tensors on one device, expressed in the window's first-camera frame
    (OpenCV axes) and in the normalised encodings the network generates.
    frames: [L] int64 indices of the covered frames in the reconstructed clip.
    point_map: [L, H, W, 3] normalised point map (invalid pixels near 1.05).
    point_confidence: [L, H, W] per-pixel weight 1 / softplus(raw uncertainty), > 0.
    disparity: [L, H, W] normalised disparity (mean of the 3 decoded channels, about [-1.1, 1.1]).
    ray_direction: [L, H, W, 3] ray directions; ray_moment: [L, H, W, 3] Plücker moments o x d.
    """

    frames: torch.Tensor
    point_map: torch.Tensor
    point_confidence: torch.Tensor
    disparity: torch.Tensor
    ray_direction: torch.Tensor
    ray_moment: torch.Tensor

    def __post_init__(self) -> None:
        length, height, width = self.point_confidence.shape
        shapes = {
            "frames": (self.frames.shape, (length,)),
            "point_map": (self.point_map.shape, (length, height, width, 3)),
            "disparity": (self.disparity.shape, (length, height, width)),
            "ray_direction": (self.ray_direction.shape, (length, height, width, 3)),
            "ray_moment": (self.ray_moment.shape, (length, height, width, 3)),
        }
        for name, (shape, wanted) in shapes.items():
            if tuple(shape) != wanted:
                raise ValueError(f"WindowPrediction.{name} has shape {tuple(shape)}; expected {wanted}.")
