"""Closed-form, batched geometric solvers of the aligner: Umeyama fits, robust weights, pose updates.

Every function works on a leading batch of independent problems ([B, ...]) so the aligner can run all
windows or all frames at once. Tensors are torch; weights are >= 0 and zero marks an unused entry.
"""

from __future__ import annotations

import torch

ROBUST_MIN_SIGMA = 1e-9
ROBUST_SAMPLE = 1 << 16


def weighted_mean(values: torch.Tensor, weights: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Mean of values [..., P, C] along dim with weights [..., P]."""
    total = weights.sum(dim=-1, keepdim=True).clamp_min(1e-30)
    return (values * weights[..., None]).sum(dim=dim) / total


def masked_median(values: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
    """Median over the last dim of values [..., P] where `used`; NaN where nothing is used."""
    return torch.nanmedian(torch.where(used, values, torch.full_like(values, float("nan"))), dim=-1).values


def cauchy_weights(residual: torch.Tensor, weights: torch.Tensor, width: float) -> torch.Tensor:
    """Weights [..., P] times a Cauchy down-weighting of residual [..., P] (>= 0).

    The scale is `width` x 1.4826 x the median residual of each batch entry (taken on an evenly strided
    subset of at most ~65k entries), so a few percent of wild values barely move a fit while inliers
    keep almost their full weight.
    """
    stride = max(1, residual.shape[-1] // ROBUST_SAMPLE)
    sigma = 1.4826 * masked_median(residual[..., ::stride], weights[..., ::stride] > 0)
    sigma = torch.nan_to_num(sigma, nan=1.0).clamp_min(ROBUST_MIN_SIGMA)[..., None]
    return weights / (1 + (residual / (width * sigma)) ** 2)


def similarity_fit(
    source: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    with_scale: bool = True,
    symmetric_scale: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted Umeyama: scale [B], rotation [B, 3, 3], translation [B, 3] with target ~ s R source + t.

    source, target [B, P, 3]; weights [B, P]. Entries without weight get the identity. Umeyama's scale
    shrinks when the source is noisy (its spread is inflated by the noise); with symmetric_scale the
    scale is the ratio of the two spreads instead, unbiased when both sides are equally noisy.
    """
    total = weights.sum(-1).clamp_min(1e-30)
    source_mean = weighted_mean(source, weights)
    target_mean = weighted_mean(target, weights)
    source_centred = source - source_mean[:, None]
    target_centred = target - target_mean[:, None]
    covariance = (target_centred * weights[..., None]).transpose(1, 2) @ source_centred / total[:, None, None]
    u, singular, vh = torch.linalg.svd(covariance)
    sign = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    flip = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], dim=-1)
    rotation = u @ (flip[..., None] * vh)
    variance = (weights * (source_centred**2).sum(-1)).sum(-1) / total
    if with_scale and symmetric_scale:
        target_variance = (weights * (target_centred**2).sum(-1)).sum(-1) / total
        scale = (target_variance / variance.clamp_min(1e-30)).sqrt()
    elif with_scale:
        scale = (singular * flip).sum(-1) / variance.clamp_min(1e-30)
    else:
        scale = torch.ones_like(total)
    empty = weights.sum(-1) <= 0
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand_as(rotation)
    rotation = torch.where(empty[:, None, None], eye, rotation)
    scale = torch.where(empty, torch.ones_like(scale), scale)
    translation = target_mean - scale[:, None] * (rotation @ source_mean[..., None])[..., 0]
    return scale, rotation, translation


def average_rotations(
    rotations: torch.Tensor, weights: torch.Tensor, index: torch.Tensor, count: int
) -> torch.Tensor:
    """Chordal weighted mean [count, 3, 3] of rotations [M, 3, 3] grouped by index [M] (weights [M])."""
    summed = torch.zeros(count, 3, 3, dtype=rotations.dtype, device=rotations.device)
    summed.index_add_(0, index, rotations * weights[:, None, None])
    u, _, vh = torch.linalg.svd(summed)
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    flip = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], dim=-1)
    return u @ (flip[..., None] * vh)


def camera_points(world: torch.Tensor, rotation: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """World points [B, P, 3] in the camera frames of cameras (rotation [B, 3, 3] camera->world, centre [B, 3])."""
    return torch.einsum("bji,bpj->bpi", rotation, world - centre[:, None])


def orthogonal_iteration(
    world: torch.Tensor,
    rays: torch.Tensor,
    weights: torch.Tensor,
    rotation: torch.Tensor,
    centre: torch.Tensor,
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine camera poses so that world points [B, P, 3] lie on their pixels' unit rays [B, P, 3].

    Object-space pose estimation (Lu, Hager and Mjolsness 2000): project each point, seen from the
    current camera, onto its viewing ray, then fit the rigid motion from those projections to the world
    points; repeat `steps` times. rotation [B, 3, 3] camera->world and centre [B, 3] are the start.
    """
    for _ in range(steps):
        local = camera_points(world, rotation, centre)
        along = (local * rays).sum(-1, keepdim=True).clamp_min(0)
        _, rotation, centre = similarity_fit(along * rays, world, weights, with_scale=False)
    return rotation, centre


def ray_distance(
    world: torch.Tensor, rays: torch.Tensor, rotation: torch.Tensor, centre: torch.Tensor
) -> torch.Tensor:
    """[B, P] distance of world points from their viewing rays (rays unit [B, P, 3] in camera axes)."""
    local = camera_points(world, rotation, centre)
    along = (local * rays).sum(-1, keepdim=True)
    return (local - along * rays).norm(dim=-1)


def affine_fit_l1(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, steps: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-batch scale [B] and shift [B] with target ~ scale * source + shift, an L1 fit by reweighting.

    source, target, weights [B, P].
    """
    current = weights
    scale = torch.ones(source.shape[0], dtype=source.dtype, device=source.device)
    shift = torch.zeros_like(scale)
    for _ in range(steps):
        total = current.sum(-1).clamp_min(1e-30)
        mean_s = (current * source).sum(-1) / total
        mean_t = (current * target).sum(-1) / total
        var_s = (current * (source - mean_s[:, None]) ** 2).sum(-1)
        cov = (current * (source - mean_s[:, None]) * (target - mean_t[:, None])).sum(-1)
        scale = cov / var_s.clamp_min(1e-30)
        shift = mean_t - scale * mean_s
        residual = (scale[:, None] * source + shift[:, None] - target).abs()
        floor = 1e-6 * target.abs().mean(-1, keepdim=True).clamp_min(1e-12)
        current = weights / residual.clamp_min(floor)
    return scale, shift


def _dlt_normal(homogeneous: torch.Tensor, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor):
    """[B, 12, 12] normal matrix of the DLT rows [Xh, 0, -x Xh] and [0, Xh, -y Xh] (Xh [B, P, 4])."""
    moments = [
        torch.einsum("bp,bpi,bpj->bij", weights * factor, homogeneous, homogeneous)
        for factor in (torch.ones_like(x), x, y, x * x + y * y)
    ]
    plain, by_x, by_y, by_both = moments
    zero = torch.zeros_like(plain)
    return torch.cat(
        [
            torch.cat([plain, zero, -by_x], dim=-1),
            torch.cat([zero, plain, -by_y], dim=-1),
            torch.cat([-by_x, -by_y, by_both], dim=-1),
        ],
        dim=-2,
    )


def _dlt_camera(homogeneous, x, y, weights):
    """Rotation_t [B, 3, 3] (points' frame -> camera), centre [B, 3] and normalised focal [B] of the DLT
    (finite even where the fit is degenerate; the caller judges the fit by its residuals)."""
    projection = (
        torch.linalg.eigh(_dlt_normal(homogeneous, x, y, weights)).eigenvectors[..., 0].reshape(-1, 3, 4)
    )
    projection = projection * torch.sign(torch.linalg.det(projection[..., :3]))[:, None, None]
    left = projection[..., :3]
    product = left @ left.transpose(-1, -2)
    focal = ((product[:, 0, 0] + product[:, 1, 1]) / (2 * product[:, 2, 2])).clamp_min(1e-12).sqrt()
    focal = torch.nan_to_num(focal, nan=1.0, posinf=1.0)
    centre = torch.nan_to_num(-torch.linalg.lstsq(left, projection[..., 3:]).solution[..., 0])
    inverse_k = torch.stack([1 / focal, 1 / focal, torch.ones_like(focal)], -1)[..., None]
    u, _, vh = torch.linalg.svd(inverse_k * left)
    return u @ vh, centre, focal


def relative_ray_distance(
    world: torch.Tensor, rays: torch.Tensor, rotation: torch.Tensor, centre: torch.Tensor
) -> torch.Tensor:
    """[B, P] distance of world points from their viewing rays relative to their depth; 1e6 behind the
    camera (rays unit [B, P, 3] in camera axes; rotation camera -> world [B, 3, 3], centre [B, 3])."""
    local = camera_points(world, rotation, centre)
    depth = local[..., 2]
    distance = (local - (local * rays).sum(-1, keepdim=True) * rays).norm(dim=-1)
    return torch.where(depth > 0, distance / depth.abs().clamp_min(1e-12), torch.full_like(depth, 1e6))


def unit_rays(offsets: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """Unit camera-axis rays [B, P, 3] of pixel offsets from the principal point [B or 1, P, 2], focal [B]."""
    offsets = offsets.expand(len(focal), -1, -1)
    rays = torch.cat([offsets / focal[:, None, None], torch.ones_like(offsets[..., :1])], dim=-1)
    return rays / rays.norm(dim=-1, keepdim=True)


def projection_fit(
    points: torch.Tensor,
    offsets: torch.Tensor,
    weights: torch.Tensor,
    start_weights: torch.Tensor,
    robust_width: float,
    steps: int = 6,
    start: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pinhole camera (principal point known, square pixels) that sees points at their pixels.

    points [B, P, 3] in any frame; offsets [B or 1, P, 2] pixel centres minus the principal point;
    weights [B, P]; start_weights [B, P]: weights with outliers already damped, for the linear start.
    A weighted DLT on conditioned points gives the start (or `start`: rotation [B, 3, 3], centre [B, 3],
    focal [B] in pixels, for points the DLT cannot handle, e.g. mostly on one plane); object-space steps (orthogonal iteration, and
    the focal regressed from the exact pixels onto the noisy points' directions, which unlike the
    image-space fit is not shrunk by point noise) refine it, Cauchy-reweighted by distance from the
    rays. Uses the points alone, so its focal is independent of any ray map. Returns rotation [B, 3, 3]
    (camera -> points' frame), centre [B, 3], focal [B] in pixels (NaN where it failed) and each point's
    distance from its ray relative to its depth [B, P].
    """
    offsets = offsets.expand(points.shape[0], -1, -1)
    size = offsets.abs().amax(dim=(1, 2)).clamp_min(1.0)
    normalised = offsets / size[:, None, None]
    mean = weighted_mean(points, weights)
    spread = weighted_mean((points - mean[:, None]).square().sum(-1, keepdim=True), weights)[:, 0].sqrt()
    conditioned = (points - mean[:, None]) / spread.clamp_min(1e-12)[:, None, None]
    homogeneous = torch.cat([conditioned, torch.ones_like(conditioned[..., :1])], dim=-1)
    if start is None:
        rotation_t, centre, focal = _dlt_camera(
            homogeneous, normalised[..., 0], normalised[..., 1], start_weights
        )
        rotation = rotation_t.transpose(-1, -2)
    else:
        rotation, centre, focal = start
        centre = (centre - mean) / spread.clamp_min(1e-12)[:, None]
        focal = focal / size

    for _ in range(steps):
        rays = unit_rays(normalised, focal)
        current = cauchy_weights(
            relative_ray_distance(conditioned, rays, rotation, centre), weights, robust_width
        )
        rotation, centre = orthogonal_iteration(conditioned, rays, current, rotation, centre, 1)
        local = camera_points(conditioned, rotation, centre)
        depth = local[..., 2]
        direction = local[..., :2] / depth.clamp_min(1e-12)[..., None]
        along = current * (depth > 0) * depth.square()
        inverse = (along[..., None] * direction * normalised).sum((1, 2)) / (
            (along[..., None] * normalised.square()).sum((1, 2)).clamp_min(1e-30)
        )
        focal = torch.where(inverse > 0, 1 / inverse.clamp_min(1e-12), focal)
    relative = relative_ray_distance(conditioned, unit_rays(normalised, focal), rotation, centre)
    failed = ~torch.isfinite(focal) | (weights.sum(-1) <= 0)
    focal = torch.where(failed, torch.full_like(focal, float("nan")), focal * size)
    centre = centre * spread[:, None] + mean
    return rotation, centre, focal, relative
