"""Full-resolution depth of the aligner: every window's point-map and disparity depth, fused robustly per pixel."""

from __future__ import annotations

import numpy as np
import torch

from ..modalities import decode_disparity, decode_point_map

DENSE_CHUNK_ELEMENTS = 1 << 24
DEPTH_ROBUST_WIDTH = 0.05
DEPTH_ROBUST_STEPS = 2


def fuse_depth(estimates, weights, start_mask, reference, width: float):
    """Robust per-pixel fusion of depth estimates [C, E, H, W] (weights alike) -> (depth [C, H, W], robust weights).

    Starts from the median of the estimates in start_mask together with `reference` [C, H, W] (the solve's
    robust depth, NaN where it has none, so that a frame seen by one window still has three votes), then
    reweights by relative deviation (Cauchy).
    """
    used = (weights > 0) & start_mask
    votes = torch.cat([torch.where(used, estimates, torch.nan), reference[:, None]], dim=1)
    depth = torch.nan_to_num(torch.nanmedian(votes, dim=1).values, nan=0.0)
    robust = weights
    for _ in range(DEPTH_ROBUST_STEPS):
        scaled = (estimates - depth[:, None]).div_(depth.abs().clamp_min(1e-12)[:, None] * width)
        robust = weights / scaled.square_().add_(1)
        depth = (robust * estimates).sum(1) / robust.sum(1).clamp_min(1e-30)
    return depth, robust


def slot_positions(frames: np.ndarray, active: np.ndarray, num_frames: int) -> tuple[np.ndarray, int]:
    """[N, L] position of each active slot among the slots that see its frame, and the most slots per frame."""
    position = np.full(frames.shape, -1, dtype=np.int64)
    counts = np.zeros(num_frames, dtype=np.int64)
    for window, slot in zip(*np.nonzero(active[:, None] & np.ones_like(frames, dtype=bool)), strict=True):
        frame = frames[window, slot]
        position[window, slot] = counts[frame]
        counts[frame] += 1
    return position, int(counts.max())


def dense_depth(
    predictions, frames, similarity, cameras, disparity_map, reference, window_weight, config, reporter
):
    """Full-resolution depth and confidence [T, H, W] float32, fused over every window seeing each frame.

    reference: [T, H, W] robust depth of the solve (nearest solver pixel; NaN where none) for the median start.
    Frames are processed in chunks that bound memory; within a chunk every window is decoded once.
    """
    scale, rotation_w, translation_w = (x.float() for x in similarity)
    cam_rotation, cam_centre = (x.float() for x in cameras)
    alpha, beta = disparity_map
    num_frames = cam_rotation.shape[0]
    _, height, width = predictions[0].point_confidence.shape
    device = predictions[0].point_map.device
    weight_np = window_weight.cpu().numpy()
    position, most = slot_positions(frames, weight_np > 0, num_frames)
    chunk = max(1, DENSE_CHUNK_ELEMENTS // (2 * most * height * width))
    depth_out = torch.zeros(num_frames, height, width, device=device)
    confidence_out = torch.zeros_like(depth_out)
    for first in range(0, num_frames, chunk):
        reporter.report("align: depth", first, num_frames)
        last = min(num_frames, first + chunk)
        estimates = torch.zeros(last - first, 2 * most, height, width, device=device)
        weights = torch.zeros_like(estimates)
        point_conf = torch.zeros(last - first, most, height, width, device=device)
        good = torch.zeros(last - first, 2 * most, 1, 1, dtype=torch.bool, device=device)
        for window in np.nonzero(weight_np > 0)[0].tolist():
            slots = np.nonzero((frames[window] >= first) & (frames[window] < last))[0]
            if len(slots) == 0:
                continue
            prediction = predictions[window]
            index = torch.from_numpy(slots).to(device)
            frame = torch.from_numpy(frames[window, slots]).to(device)
            decoded, valid = decode_point_map(prediction.point_map[index], config.sky_tolerance)
            conf = (
                torch.nan_to_num(prediction.point_confidence[index], nan=0.0, posinf=0.0).clamp_min(0) * valid
            )
            world = scale[window] * decoded @ rotation_w[window].T + translation_w[window]
            z = ((world - cam_centre[frame][:, None, None]) * cam_rotation[frame][:, None, None, :, 2]).sum(
                -1
            )
            weight = conf * float(weight_np[window]) * (z > 0)
            disparity, disparity_valid = decode_disparity(prediction.disparity[index], point_valid=valid)
            inverse = float(alpha[window]) * disparity + float(beta[window])
            usable = disparity_valid & (inverse > 1e-9) & (weight > 0)
            rows = frame - first
            slot_pos = torch.from_numpy(position[window, slots]).to(device)
            estimates[rows, slot_pos] = z
            estimates[rows, most + slot_pos] = torch.where(usable, 1 / inverse.clamp_min(1e-9), z)
            weights[rows, slot_pos] = weight
            weights[rows, most + slot_pos] = weight * usable * config.disparity_weight
            point_conf[rows, slot_pos] = conf
            good[rows, slot_pos] = good[rows, most + slot_pos] = bool(weight_np[window] > 0.5)
        good_any = ((weights > 0) & good).any(1, keepdim=True)
        start_mask = good | ~good_any
        depth, robust = fuse_depth(estimates, weights, start_mask, reference[first:last], DEPTH_ROBUST_WIDTH)
        agreement = robust[:, :most] / weights[:, :most].clamp_min(1e-30)
        seen = (point_conf > 0).sum(1).clamp_min(1)
        covered = (weights.sum(1) > 0) & (depth > 0)
        depth_out[first:last] = torch.where(covered, depth, torch.zeros_like(depth))
        confidence_out[first:last] = (agreement * point_conf).sum(1) / seen * covered
    return depth_out, confidence_out
