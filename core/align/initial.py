"""The aligner's closed-form start: windows sampled on a solver grid, pairwise window fits, window chaining."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import Geo4DError
from ..modalities import decode_disparity, decode_point_map
from ..prediction import WindowPrediction
from .solvers import affine_fit_l1, cauchy_weights, masked_median, similarity_fit

SOLVER_DTYPE = torch.float64
CHAIN_ROBUST_STEPS = 6
PAIR_BLOCK_POINTS = 1 << 21
PAIR_SAMPLE_POINTS = 1 << 14


@dataclass
class SolverGrid:
    """All windows sampled on one regular pixel subgrid, decoded, in float64 (the solve is small).

    points [N, L, P, 3] decoded-frame points; weights [N, L, P] confidence (0 where invalid);
    disparity [N, L, P] (D'+1)/2 with disparity_valid; direction, moment [N, L, P, 3] ray maps;
    pixels [P, 2] pixel centres (u, v) of the samples; centre (cx, cy); shape (h, w) of the subgrid;
    frames_t [N, L] frame of each slot; window_weight [N] 1 or 0 (empty); nearest_rows [H], nearest_cols [W]:
    the subgrid row/column nearest to each full-resolution row/column.
    """

    points: torch.Tensor
    weights: torch.Tensor
    disparity: torch.Tensor
    disparity_valid: torch.Tensor
    direction: torch.Tensor
    moment: torch.Tensor
    pixels: torch.Tensor
    centre: tuple[float, float]
    shape: tuple[int, int]
    frames_t: torch.Tensor
    window_weight: torch.Tensor
    nearest_rows: torch.Tensor
    nearest_cols: torch.Tensor

    @property
    def offsets(self) -> torch.Tensor:
        """[1, P, 2] pixel centres minus the principal point."""
        return (self.pixels - torch.tensor(self.centre, dtype=self.pixels.dtype, device=self.pixels.device))[
            None
        ]

    def scene_size(self) -> float:
        """Median distance of valid points from their window's centroid (decoded units), for relative misfits."""
        centroid = (self.points * self.weights[..., None]).sum((1, 2)) / self.weights.sum((1, 2)).clamp_min(
            1e-30
        )[:, None]
        spread = (self.points - centroid[:, None, None]).norm(dim=-1)
        value = float(masked_median(spread.reshape(1, -1), (self.weights > 0).reshape(1, -1))[0])
        return value if math.isfinite(value) and value > 0 else 1.0

    def fit_disparity(
        self,
        inverse_depth: torch.Tensor,
        usable: torch.Tensor,
        robust: torch.Tensor,
        window_weight: torch.Tensor,
    ):
        """Per-window (alpha [N], beta [N]) with alpha (D'+1)/2 + beta ~ 1/depth, an L1 fit.

        inverse_depth, usable: [T, P] fused inverse depth of the solver pixels; robust [N, L, P] weights.
        """
        count = self.weights.shape[0]
        target = inverse_depth[self.frames_t].reshape(count, -1)
        weights = (robust * self.disparity_valid * usable[self.frames_t]).reshape(count, -1)
        alpha, beta = affine_fit_l1(self.disparity.reshape(count, -1), target, weights)
        empty = (weights.sum(-1) <= 0) | (window_weight <= 0)
        return torch.where(empty, torch.zeros_like(alpha), alpha), torch.where(
            empty, torch.zeros_like(beta), beta
        )


def sample_windows(predictions: list[WindowPrediction], frames: np.ndarray, config) -> SolverGrid:
    """Decode every window on a regular subgrid of at most config.solver_pixels pixels per frame."""
    _, height, width = predictions[0].point_confidence.shape
    step = max(1, math.ceil(math.sqrt(height * width / config.solver_pixels)))
    device = predictions[0].point_map.device
    rows = torch.arange(step // 2, height, step, device=device)
    cols = torch.arange(step // 2, width, step, device=device)

    def take(name: str) -> torch.Tensor:
        stacked = torch.stack([getattr(p, name)[:, rows][:, :, cols] for p in predictions]).to(SOLVER_DTYPE)
        return stacked.reshape(*stacked.shape[:2], len(rows) * len(cols), *stacked.shape[4:])

    points, valid = decode_point_map(take("point_map"), config.sky_tolerance)
    confidence = torch.nan_to_num(take("point_confidence"), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    disparity, disparity_valid = decode_disparity(take("disparity"), point_valid=valid)
    direction = take("ray_direction")
    moment = take("ray_moment")
    rays_ok = (
        torch.isfinite(direction).all(-1) & torch.isfinite(moment).all(-1) & (direction.norm(dim=-1) > 1e-6)
    )
    weights = confidence * valid * rays_ok
    v, u = torch.meshgrid(rows.to(SOLVER_DTYPE) + 0.5, cols.to(SOLVER_DTYPE) + 0.5, indexing="ij")
    window_weight = (weights.sum((1, 2)) > 0).to(SOLVER_DTYPE)
    return SolverGrid(
        points=points,
        weights=weights,
        disparity=disparity,
        disparity_valid=disparity_valid & valid,
        direction=torch.where(rays_ok[..., None], direction, torch.zeros_like(direction)),
        moment=torch.where(rays_ok[..., None], moment, torch.zeros_like(moment)),
        pixels=torch.stack([u, v], dim=-1).reshape(-1, 2),
        centre=(width / 2, height / 2),
        shape=(len(rows), len(cols)),
        frames_t=torch.from_numpy(frames).to(device),
        window_weight=window_weight,
        nearest_rows=(torch.arange(height, device=device)[:, None] - rows[None, :]).abs().argmin(1),
        nearest_cols=(torch.arange(width, device=device)[:, None] - cols[None, :]).abs().argmin(1),
    )


def overlapping_pairs(frames: np.ndarray, max_gap: int = 3) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(a, b, slots in a, slots in b) for windows a < b <= a + max_gap that share frames."""
    pairs = []
    for first in range(frames.shape[0]):
        for second in range(first + 1, min(frames.shape[0], first + max_gap + 1)):
            _, slots_a, slots_b = np.intersect1d(frames[first], frames[second], return_indices=True)
            if len(slots_a):
                pairs.append((first, second, slots_a, slots_b))
    return pairs


def fit_pairs(grid: SolverGrid, pairs, config):
    """Robust Umeyama fits between overlapping windows over their shared frames, in blocks of pairs, on
    an evenly strided subset of the solver pixels (at most about PAIR_SAMPLE_POINTS per pair).

    Returns the similarities taking window a's frame to window b's (scale [M], rotation [M, 3, 3],
    translation [M, 3]), the misfit [M] (median point distance after the fit, b's units; inf when
    nothing is shared) and the support [M] (summed weights).
    """
    device = grid.points.device
    width = max((len(slots) for _, _, slots, _ in pairs), default=1)
    stride = max(1, math.ceil(width * grid.points.shape[2] / PAIR_SAMPLE_POINTS))
    sample = torch.arange(0, grid.points.shape[2], stride, device=device)
    points, point_weights = grid.points[:, :, sample], grid.weights[:, :, sample]
    results = []
    block = max(1, PAIR_BLOCK_POINTS // (width * len(sample)))
    for start in range(0, len(pairs), block):
        chunk = pairs[start : start + block]
        index_a = torch.zeros(len(chunk), width, dtype=torch.long, device=device)
        index_b = torch.zeros_like(index_a)
        present = torch.zeros(len(chunk), width, dtype=SOLVER_DTYPE, device=device)
        for row, (_, _, slots_a, slots_b) in enumerate(chunk):
            index_a[row, : len(slots_a)] = torch.from_numpy(slots_a)
            index_b[row, : len(slots_b)] = torch.from_numpy(slots_b)
            present[row, : len(slots_a)] = 1
        first = torch.tensor([pair[0] for pair in chunk], device=device)[:, None]
        second = torch.tensor([pair[1] for pair in chunk], device=device)[:, None]
        source = points[first, index_a].reshape(len(chunk), -1, 3)
        target = points[second, index_b].reshape(len(chunk), -1, 3)
        base = (point_weights[first, index_a] * point_weights[second, index_b] * present[..., None]).reshape(
            len(chunk), -1
        )
        weights = base
        for _ in range(CHAIN_ROBUST_STEPS):
            fitted = similarity_fit(source, target, weights, symmetric_scale=True)
            moved = fitted[0][:, None, None] * source @ fitted[1].transpose(-1, -2) + fitted[2][:, None]
            distance = (moved - target).norm(dim=-1)
            weights = cauchy_weights(distance, base, config.robust_width)
        misfit = torch.nan_to_num(masked_median(distance, base > 0), nan=float("inf"))
        results.append((*fitted, misfit, base.sum(-1)))
    return tuple(torch.cat(values) for values in zip(*results, strict=True))


def pair_misfits(misfit: torch.Tensor, pairs, count: int) -> torch.Tensor:
    """[N] each window's best misfit with any overlapping window (inf with none)."""
    result = torch.full((count,), float("inf"), dtype=misfit.dtype, device=misfit.device)
    for value, (first, second, _, _) in zip(misfit.tolist(), pairs, strict=True):
        result[first] = min(float(result[first]), value)
        result[second] = min(float(result[second]), value)
    return result


def _connected(pairs, windows: list[int]) -> bool:
    """True when the pairs link all `windows` into one component."""
    if not windows:
        return False
    linked = {windows[0]}
    grown = True
    while grown:
        grown = False
        for first, second in pairs:
            if (first in linked) != (second in linked):
                linked |= {first, second}
                grown = True
    return linked.issuperset(windows)


def average_pair_similarities(pairs, similarity, support, windows: list[int], count: int):
    """Window similarities (scale [N], rotation [N, 3, 3], translation [N, 3]) most consistent with the
    pairwise ones, by linear least squares with the first of `windows` fixed; None when the pairs do not
    connect `windows`. Solves log-scales, then rotations (chordal, projected onto SO(3)), then
    translations, each weighted by the square root of the pair's support. Windows outside get identity.
    """
    chosen = [m for m, (a, b, _, _) in enumerate(pairs) if a in windows and b in windows]
    if not _connected([pairs[m][:2] for m in chosen], windows):
        return None
    scale_ab, rotation_ab, translation_ab = (x[chosen] for x in similarity)
    device, dtype = scale_ab.device, scale_ab.dtype
    rows = len(chosen)
    first = torch.tensor([pairs[m][0] for m in chosen], device=device)
    second = torch.tensor([pairs[m][1] for m in chosen], device=device)
    weight = support[chosen].clamp_min(1e-12).sqrt()
    weight = weight / weight.mean()
    anchor = windows[0]
    incidence = torch.zeros(rows + 1, count, dtype=dtype, device=device)
    incidence[torch.arange(rows, device=device), first] = 1.0
    incidence[torch.arange(rows, device=device), second] = -1.0
    incidence[rows, anchor] = 1.0
    incidence[:rows] *= weight[:, None]
    unused = [w for w in range(count) if w not in windows]
    incidence[rows, unused] = 0.0
    keep = torch.tensor(windows, device=device)
    # a = b o ab:  log s_a - log s_b = log s_ab
    log_scale = torch.zeros(count, dtype=dtype, device=device)
    rhs = torch.cat([weight * scale_ab.log(), torch.zeros(1, dtype=dtype, device=device)])
    log_scale[keep] = torch.linalg.lstsq(incidence[:, keep], rhs[:, None]).solution[:, 0]
    scale = log_scale.exp()
    # R_a = R_b R_ab, i.e. R_a^T - R_ab^T R_b^T = 0; unknowns Y_w = R_w^T, anchor Y = I
    system = torch.zeros(3 * (rows + 1), 3 * count, dtype=dtype, device=device)
    eye = torch.eye(3, dtype=dtype, device=device)
    for row in range(rows):
        a, b = int(first[row]), int(second[row])
        system[3 * row : 3 * row + 3, 3 * a : 3 * a + 3] = weight[row] * eye
        system[3 * row : 3 * row + 3, 3 * b : 3 * b + 3] = -weight[row] * rotation_ab[row].T
    system[3 * rows :, 3 * anchor : 3 * anchor + 3] = eye
    columns = torch.cat([torch.arange(3 * w, 3 * w + 3, device=device) for w in windows])
    target = torch.zeros(3 * (rows + 1), 3, dtype=dtype, device=device)
    target[3 * rows :] = eye
    stacked = torch.linalg.lstsq(system[:, columns], target).solution.reshape(len(windows), 3, 3)
    u, _, vh = torch.linalg.svd(stacked.transpose(-1, -2))
    sign = torch.sign(torch.linalg.det(u @ vh))
    flip = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], dim=-1)
    rotation = eye.repeat(count, 1, 1)
    rotation[keep] = u @ (flip[..., None] * vh)
    # t_a = s_b R_b t_ab + t_b
    moved = scale[second, None] * (rotation[second] @ translation_ab[..., None])[..., 0]
    rhs = torch.cat([weight[:, None] * moved, torch.zeros(1, 3, dtype=dtype, device=device)])
    translation = torch.zeros(count, 3, dtype=dtype, device=device)
    translation[keep] = torch.linalg.lstsq(incidence[:, keep], rhs).solution
    return scale, rotation, translation


def chain_windows(
    grid: SolverGrid, frames: np.ndarray, window_weight: torch.Tensor, num_frames: int, config, initial=None
):
    """Similarities (scale [N], rotation [N, 3, 3], translation [N, 3]) taking each window into one world.

    The first trusted window defines the world; each next window (trusted ones first, in order) is fitted
    by robust weighted Umeyama to the points fused so far on the frames they share. `initial`, a pair
    (similarity, placed windows), starts from windows already placed (e.g. by pair averaging).
    """
    count, length, pixels = grid.weights.shape
    device = grid.points.device
    scale = torch.ones(count, dtype=SOLVER_DTYPE, device=device)
    rotation = torch.eye(3, dtype=SOLVER_DTYPE, device=device).repeat(count, 1, 1)
    translation = torch.zeros(count, 3, dtype=SOLVER_DTYPE, device=device)
    placed: list[int] = []
    if initial is not None:
        (scale, rotation, translation), placed = (x.clone() for x in initial[0]), initial[1]
    usable = [w for w in range(count) if window_weight[w] > 0]
    pending = sorted(usable, key=lambda w: (w not in placed, float(window_weight[w]) <= 0.5, w))
    summed = torch.zeros(num_frames, pixels, 3, dtype=SOLVER_DTYPE, device=device)
    total = torch.zeros(num_frames, pixels, dtype=SOLVER_DTYPE, device=device)
    frame_index = torch.from_numpy(frames).to(device)

    def add(window: int) -> None:
        world = scale[window] * grid.points[window] @ rotation[window].T + translation[window]
        weight = grid.weights[window] * window_weight[window]
        summed.index_add_(0, frame_index[window], world * weight[..., None])
        total.index_add_(0, frame_index[window], weight)

    add(pending.pop(0))
    while pending and pending[0] in placed:
        add(pending.pop(0))
    while pending:
        for window in pending:
            seen = total[frame_index[window]]
            base = grid.weights[window] * (seen > 0)
            if int((base > 0).sum()) >= config.min_frame_points:
                break
        else:
            raise Geo4DError(
                "Some windows share no frames with the others, so they cannot be aligned. Use a smaller stride."
            )
        target = (summed[frame_index[window]] / seen.clamp_min(1e-30)[..., None]).reshape(1, -1, 3)
        source = grid.points[window].reshape(1, -1, 3)
        weights = base.reshape(1, -1)
        for _ in range(CHAIN_ROBUST_STEPS):
            fitted = similarity_fit(source, target, weights)
            moved = fitted[0][:, None, None] * source @ fitted[1].transpose(-1, -2) + fitted[2][:, None]
            weights = cauchy_weights((moved - target).norm(dim=-1), base.reshape(1, -1), config.robust_width)
        scale[window], rotation[window], translation[window] = fitted[0][0], fitted[1][0], fitted[2][0]
        pending.remove(window)
        add(window)
    return scale, rotation, translation
