"""Writers of fake datasets in their distributed on-disk formats, shared by the dataset reader tests."""

import numpy as np
import pytest

from geo4d.core.evaluation.datasets.image_files import write_png


def axis_angle_rotation(rotation_vector):
    """Rodrigues' formula: [3, 3] rotation of angle |v| about v."""
    rotation_vector = np.asarray(rotation_vector, dtype=float)
    angle = np.linalg.norm(rotation_vector)
    axis = rotation_vector / angle
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def axis_angle_quaternion(rotation_vector):
    """(qx, qy, qz, qw) of the same rotation: axis * sin(angle / 2), cos(angle / 2)."""
    rotation_vector = np.asarray(rotation_vector, dtype=float)
    angle = np.linalg.norm(rotation_vector)
    return np.append(rotation_vector / angle * np.sin(angle / 2), np.cos(angle / 2))


@pytest.fixture
def rotation_of():
    """Rodrigues' formula as a fixture: rotation_of(v) is the [3, 3] rotation of angle |v| about v."""
    return axis_angle_rotation


def write_list(path, header, rows):
    """A TUM list: three comment lines, then one space-separated row per entry."""
    lines = [f"# {header}", f"# file: '{path.parent.name}.bag'", "# timestamp data"]
    path.write_text("\n".join(lines + [" ".join(str(value) for value in row) for row in rows]) + "\n")


@pytest.fixture
def write_tum_folder():
    """Write a TUM-format sequence (rgb/, depth/, rgb.txt, depth.txt, groundtruth.txt) and return its truth.

    Frames are 3x4 pixels; images and depths are random but seeded; depth PNG values are depth * 5000.
    Returns dict: images [N, 3, 4, 3] uint8, raw_depths [M, 3, 4] uint16, poses [P, 4, 4] camera-to-world.
    """

    def write(folder, rgb_stamps, depth_stamps, pose_stamps, seed=0):
        rng = np.random.default_rng(seed)
        (folder / "rgb").mkdir(parents=True)
        (folder / "depth").mkdir()
        images = rng.integers(0, 256, (len(rgb_stamps), 3, 4, 3), dtype=np.uint8)
        raw_depths = rng.integers(0, 40000, (len(depth_stamps), 3, 4), dtype=np.uint16)
        raw_depths[:, 0, 0] = 0  # one pixel without a measurement per frame
        rgb_rows, depth_rows, pose_rows, poses = [], [], [], []
        for stamp, image in zip(rgb_stamps, images, strict=True):
            write_png(folder / "rgb" / f"{stamp:.6f}.png", image)
            rgb_rows.append((f"{stamp:.6f}", f"rgb/{stamp:.6f}.png"))
        for stamp, raw in zip(depth_stamps, raw_depths, strict=True):
            write_png(folder / "depth" / f"{stamp:.6f}.png", raw)
            depth_rows.append((f"{stamp:.6f}", f"depth/{stamp:.6f}.png"))
        for stamp in pose_stamps:
            rotation_vector = rng.normal(size=3)
            translation = rng.normal(size=3)
            pose = np.eye(4)
            pose[:3, :3], pose[:3, 3] = axis_angle_rotation(rotation_vector), translation
            poses.append(pose)
            pose_rows.append(
                (f"{stamp:.4f}", *(f"{v:.17g}" for v in translation), *axis_angle_quaternion(rotation_vector))
            )
        write_list(folder / "rgb.txt", "color images", rgb_rows)
        write_list(folder / "depth.txt", "depth maps", depth_rows)
        write_list(folder / "groundtruth.txt", "ground truth trajectory", pose_rows)
        return {"images": images, "raw_depths": raw_depths, "poses": np.array(poses).reshape(-1, 4, 4)}

    return write
