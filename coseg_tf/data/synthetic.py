"""A synthetic video set with ground truth: articulated 2D puppets.

Each video shows one puppet of 10 rigid parts (head, torso, upper/lower arms, thighs, shins)
linked as a kinematic tree at 13 joints, on its own static textured background. Joint angles
follow smooth random curves (sums of sinusoids) with wide ranges, so limbs swing far relative
to each other, plus a global translation and torso lean: exactly the kind of part motion the
method learns parts from. Parts are drawn back to front in a fixed order (`DRAW_ORDER`), so
they occlude each other, and the label map records what is visible.

Appearance is per identity (body proportions, two colours per part, the stripe period);
background and motion are per clip. Videos are named `puppet<identity>#clip<k>` so that
`id_sampling` applies. Everything derives from `(seed, identity, clip)`, so a video does not
change when more videos are generated.

Ground truth per video (`ground_truth/<split>/<name>.npz`):
  labels           uint8   [T, H, W]   0 = background, k = PART_NAMES[k] (visible part)
  mask             bool    [T, H, W]   foreground, == labels > 0
  landmarks        float32 [T, J, 2]   joint positions (x, y) in pixels, pixel centres at
                                       integer coordinates (may lie outside the frame)
  landmark_visible bool    [T, J]      the landmark's pixel is in the frame and shows one of
                                       the parts meeting at that joint (`JOINT_PARTS`)
  part_colors      uint8   [11, 2, 3]  RGB of each part's two stripe colours (row 0 unused)
plus `ground_truth/info.json` with part and joint names, the draw order and the settings.

Rendering is vectorised numpy plus `cv2.fillConvexPoly` (hard edges, no anti-aliasing, so
every pixel of a part region has exactly one of the part's two colours in the lossless
layouts). TensorFlow is not imported.

The writer and layout (`generate_synthetic_dataset`) serve every procedural `Family`; the
other one is `coseg_tf.data.heads` (talking heads), with the same files and ground truth.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np

from coseg_tf import fileio
from coseg_tf.data import video_io

PART_NAMES = (
    "background",
    "head",
    "torso",
    "left_upper_arm",
    "left_lower_arm",
    "right_upper_arm",
    "right_lower_arm",
    "left_thigh",
    "left_shin",
    "right_thigh",
    "right_shin",
)
NUM_PARTS = len(PART_NAMES) - 1
HEAD, TORSO, L_UARM, L_LARM, R_UARM, R_LARM, L_THIGH, L_SHIN, R_THIGH, R_SHIN = range(1, 11)

JOINT_NAMES = (
    "head_top",
    "neck",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_hip",
    "right_knee",
    "right_ankle",
)
# The parts meeting at each joint (a landmark lies inside all of their shapes).
JOINT_PARTS = (
    (HEAD,),
    (HEAD, TORSO),
    (TORSO, L_UARM),
    (L_UARM, L_LARM),
    (L_LARM,),
    (TORSO, R_UARM),
    (R_UARM, R_LARM),
    (R_LARM,),
    (TORSO, L_THIGH),
    (L_THIGH, L_SHIN),
    (L_SHIN,),
    (TORSO, R_THIGH),
    (R_THIGH, R_SHIN),
    (R_SHIN,),
)
# Back to front: the left limbs behind the torso, the right limbs in front of it; a child
# after its parent so that it covers the shared joint.
DRAW_ORDER = (L_THIGH, L_SHIN, L_UARM, L_LARM, TORSO, HEAD, R_THIGH, R_SHIN, R_UARM, R_LARM)

VIDEO_FORMATS = ("mp4", "mov", "avi")  # written by one FFmpeg process per split
FORMATS = ("mp4", "mov", "avi", "gif", "png", "jpg", "frames")
_CAP_POINTS = 7  # vertices per half circle of a capsule


@dataclasses.dataclass(frozen=True)
class Appearance:
    """Per-identity body and colours, in pixels."""

    height: float
    head: tuple[float, float]  # (width, height)
    torso: float
    shoulder: float  # half width at the shoulders
    hip: float  # half width at the hips
    upper_arm: float
    lower_arm: float
    thigh: float
    shin: float
    arm_width: float
    leg_width: float
    colors: np.ndarray  # uint8 [11, 2, 3]
    period: float  # stripe period, pixels


def _appearance(rng: np.random.Generator, size: int) -> Appearance:
    height = rng.uniform(0.55, 0.68) * size

    def length(base: float) -> float:
        return base * height * rng.uniform(0.9, 1.1)

    hues = (rng.uniform() + np.arange(NUM_PARTS) / NUM_PARTS + rng.uniform(-0.03, 0.03, NUM_PARTS)) % 1.0
    hues = rng.permutation(hues)
    sat = rng.uniform(0.6, 1.0, NUM_PARTS)
    val = rng.uniform(0.8, 1.0, NUM_PARTS)
    hsv = np.zeros((NUM_PARTS, 2, 3), np.float32)
    hsv[:, :, 0] = (hues * 360.0)[:, None]
    hsv[:, :, 1] = sat[:, None]
    hsv[:, 0, 2] = val
    hsv[:, 1, 2] = val * rng.uniform(0.45, 0.6, NUM_PARTS)
    rgb = cv2.cvtColor(hsv.reshape(1, -1, 3), cv2.COLOR_HSV2RGB).reshape(NUM_PARTS, 2, 3)
    colors = np.zeros((NUM_PARTS + 1, 2, 3), np.uint8)
    colors[1:] = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return Appearance(
        height=height,
        head=(length(0.13), length(0.16)),
        torso=length(0.30),
        shoulder=length(0.10),
        hip=length(0.07),
        upper_arm=length(0.17),
        lower_arm=length(0.16),
        thigh=length(0.22),
        shin=length(0.22),
        arm_width=max(3.0, length(0.085)),
        leg_width=max(3.5, length(0.1)),
        colors=colors,
        period=max(3.0, size * rng.uniform(1 / 14, 1 / 9)),
    )


def background_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted (low saturation) static texture: blotches, faint oriented stripes, fine grain.

    Args:
      rng: The random generator to draw from.
      size: Side of the square image in pixels.

    Returns:
      [size, size, 3] uint8 RGB image.
    """
    hsv = np.stack(
        [rng.uniform(0, 360, 2), rng.uniform(0.05, 0.3, 2), rng.uniform(0.3, 0.65, 2)], axis=-1
    ).astype(np.float32)
    pair = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]  # [2, 3] in [0, 1]
    coarse = rng.uniform(0, 1, (5, 5)).astype(np.float32)
    blend = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    blend = np.clip(blend, 0, 1)[..., None]
    image = pair[0] * (1 - blend) + pair[1] * blend
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    wavelength = size * rng.uniform(0.06, 0.15)
    stripes = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / wavelength)
    image = image + 0.06 * stripes[..., None]
    image = image + rng.uniform(-0.02, 0.02, (size, size, 1)).astype(np.float32)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def smooth_curves(rng: np.random.Generator, num_frames: int, count: int) -> np.ndarray:
    """`count` smooth random curves over the frames, each spanning about [-1, 1]: [count, T].

    Args:
      rng: The random generator to draw from.
      num_frames: T, the number of frames.
      count: Number of curves.

    Returns:
      float64 [count, T] curves (sums of two sines of 24 to 64 frames per cycle).
    """
    t = np.arange(num_frames, dtype=np.float64)[None, :, None]
    freq = rng.uniform(1 / 64, 1 / 24, (count, 1, 2))  # cycles per frame, two harmonics
    phase = rng.uniform(0, 2 * np.pi, (count, 1, 2))
    weight = np.array([1.0, 0.45])
    curve = (np.sin(2 * np.pi * freq * t + phase) * weight).sum(-1)
    return curve / weight.sum()


def _direction(angle: np.ndarray) -> np.ndarray:
    """Unit vector of an angle measured from 'up' towards +x, in image coordinates: [..., 2]."""
    return np.stack([np.sin(angle), -np.cos(angle)], axis=-1)


def _capsule(a: np.ndarray, b: np.ndarray, half_width: float) -> np.ndarray:
    """Convex polygon [T, 2 * _CAP_POINTS, 2] of a rounded bar from a to b ([T, 2] each)."""
    axis = b - a
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-6)
    normal = np.stack([-axis[:, 1], axis[:, 0]], axis=-1)
    psi_b = np.linspace(-np.pi / 2, np.pi / 2, _CAP_POINTS)
    psi_a = psi_b + np.pi

    def cap(center: np.ndarray, psi: np.ndarray) -> np.ndarray:
        return center[:, None] + half_width * (
            np.cos(psi)[None, :, None] * axis[:, None] + np.sin(psi)[None, :, None] * normal[:, None]
        )

    return np.concatenate([cap(b, psi_b), cap(a, psi_a)], axis=1)


@dataclasses.dataclass
class Pose:
    """Everything rendering and ground truth need, per frame."""

    joints: np.ndarray  # [T, J, 2]
    polygons: dict[int, np.ndarray]  # part -> [T, N, 2]
    anchors: np.ndarray  # [T, 11, 2] texture origin per part
    axes: np.ndarray  # [T, 11, 2] texture axis per part


def _pose(rng: np.random.Generator, look: Appearance, size: int, num_frames: int) -> Pose:
    curves = smooth_curves(rng, num_frames, 12)

    def angle(i: int, center: tuple[float, float], amplitude: tuple[float, float]) -> np.ndarray:
        return rng.uniform(*center) + rng.uniform(*amplitude) * curves[i]

    lean = angle(0, (-0.05, 0.05), (0.1, 0.25))
    neck_turn = angle(1, (-0.1, 0.1), (0.15, 0.3))
    shoulders = [angle(2 + s, (0.3, 0.8), (0.9, 1.4)) for s in range(2)]
    elbows = [angle(4 + s, (0.4, 0.9), (0.4, 0.8)) for s in range(2)]
    hips_a = [angle(6 + s, (0.05, 0.25), (0.3, 0.6)) for s in range(2)]
    knees = [angle(8 + s, (0.25, 0.6), (0.2, 0.5)) for s in range(2)]

    above = look.torso + look.head[1]
    below = look.thigh + look.shin + look.leg_width / 2
    base_y = size / 2 + (above - below) / 2
    pelvis = np.stack(
        [
            size / 2 + size * rng.uniform(0.08, 0.15) * curves[10],
            base_y + size * rng.uniform(0.02, 0.06) * curves[11],
        ],
        axis=-1,
    )
    up = _direction(lean)
    right = _direction(lean + np.pi / 2)
    neck = pelvis + look.torso * up
    joints = {"neck": neck}
    polygons: dict[int, np.ndarray] = {}
    anchors = np.zeros((num_frames, NUM_PARTS + 1, 2))
    axes = np.zeros((num_frames, NUM_PARTS + 1, 2))
    axes[:, 0] = (1.0, 0.0)

    head_dir = _direction(lean + neck_turn)
    head_right = _direction(lean + neck_turn + np.pi / 2)
    head_w, head_h = look.head
    head_center = neck + (0.5 - 0.12) * head_h * head_dir
    joints["head_top"] = head_center + 0.5 * head_h * head_dir
    psi = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    polygons[HEAD] = head_center[:, None] + (
        0.5 * head_w * np.cos(psi)[None, :, None] * head_right[:, None]
        + 0.5 * head_h * np.sin(psi)[None, :, None] * head_dir[:, None]
    )
    anchors[:, HEAD], axes[:, HEAD] = neck, head_dir

    margin = 0.12 * look.torso
    corners = [(-(look.hip + margin), -margin), (look.hip + margin, -margin)]
    corners += [(look.shoulder + margin, 0.88 * look.torso + margin)]
    corners += [(-(look.shoulder + margin), 0.88 * look.torso + margin)]
    polygons[TORSO] = np.stack([pelvis + cx * right + cy * up for cx, cy in corners], axis=1)
    anchors[:, TORSO], axes[:, TORSO] = pelvis, up

    for s, side in enumerate(("left", "right")):
        sign = 1.0 if side == "left" else -1.0
        uarm, larm, thigh, shin = (
            (L_UARM, L_LARM, L_THIGH, L_SHIN) if s == 0 else (R_UARM, R_LARM, R_THIGH, R_SHIN)
        )
        shoulder = neck + sign * look.shoulder * right - 0.1 * look.torso * up
        a_upper = lean + np.pi - sign * shoulders[s]
        elbow = shoulder + look.upper_arm * _direction(a_upper)
        a_lower = a_upper - sign * elbows[s]
        wrist = elbow + look.lower_arm * _direction(a_lower)
        hip = pelvis + sign * look.hip * right
        a_thigh = lean + np.pi - sign * hips_a[s]
        knee = hip + look.thigh * _direction(a_thigh)
        a_shin = a_thigh + sign * knees[s]
        ankle = knee + look.shin * _direction(a_shin)
        joints.update(
            {
                f"{side}_shoulder": shoulder,
                f"{side}_elbow": elbow,
                f"{side}_wrist": wrist,
                f"{side}_hip": hip,
                f"{side}_knee": knee,
                f"{side}_ankle": ankle,
            }
        )
        for part, a, b, width in (
            (uarm, shoulder, elbow, look.arm_width),
            (larm, elbow, wrist, look.arm_width),
            (thigh, hip, knee, look.leg_width),
            (shin, knee, ankle, look.leg_width),
        ):
            polygons[part] = _capsule(a, b, width / 2)
            anchors[:, part] = a
            axes[:, part] = (b - a) / np.maximum(np.linalg.norm(b - a, axis=-1, keepdims=True), 1e-6)
    stacked = np.stack([joints[name] for name in JOINT_NAMES], axis=1).astype(np.float32)
    return Pose(stacked, polygons, anchors, axes)


def rasterise(layers: Sequence[tuple[int, np.ndarray]], size: int, num_frames: int) -> np.ndarray:
    """Label maps uint8 [T, size, size] of convex polygons filled back to front.

    Args:
      layers: (part label, polygons [T, N, 2] as (x, y) pixels) in drawing order; a later
        layer covers an earlier one. A frame whose polygon has a NaN vertex skips the layer
        (the part is hidden in that frame).
      size: Frame height and width.
      num_frames: T.

    Returns:
      The labels, 0 where no layer is drawn.
    """
    labels = np.zeros((num_frames, size, size), np.uint8)
    for part, polygons in layers:
        drawn = np.isfinite(polygons).all(axis=(1, 2))
        fixed = np.round(np.nan_to_num(polygons) * 16.0).astype(np.int32)  # 4 fractional bits
        for t in np.flatnonzero(drawn):
            cv2.fillConvexPoly(labels[t], fixed[t], int(part), lineType=cv2.LINE_8, shift=4)
    return labels


def landmark_visibility(
    landmarks: np.ndarray, labels: np.ndarray, joint_parts: Sequence[Sequence[int]]
) -> np.ndarray:
    """Whether each landmark is seen: bool [T, J].

    Args:
      landmarks: float [T, J, 2] (x, y) pixels, pixel centres at integer coordinates.
      labels: uint8 [T, H, W] label maps.
      joint_parts: Per landmark, the part labels it lies on.

    Returns:
      True where the landmark's pixel is in the frame and shows one of its parts.
    """
    num_frames, height, width = labels.shape
    pixel = np.round(landmarks).astype(np.int64)
    inside = (pixel >= 0).all(-1) & (pixel[..., 0] < width) & (pixel[..., 1] < height)
    seen = labels[
        np.arange(num_frames)[:, None],
        np.clip(pixel[..., 1], 0, height - 1),
        np.clip(pixel[..., 0], 0, width - 1),
    ]
    allowed = np.zeros((len(joint_parts), 256), bool)
    for j, parts in enumerate(joint_parts):
        allowed[j, list(parts)] = True
    return inside & allowed[np.arange(len(joint_parts))[None], seen]


def _paint(
    labels: np.ndarray, pose: Pose, look: Appearance, background: np.ndarray, flat: bool
) -> np.ndarray:
    """Colours each visible part with its stripes (checks on the torso) moving with the part."""
    num_frames = labels.shape[0]
    frames = np.repeat(background[None], num_frames, axis=0)
    t, y, x = np.nonzero(labels)  # only foreground pixels: ~10-20% of the frame
    part = labels[t, y, x].astype(np.intp)
    if flat:
        pattern = np.zeros_like(part)
    else:
        anchor = pose.anchors[t, part].astype(np.float32)
        axis = pose.axes[t, part].astype(np.float32)
        dx, dy = x - anchor[:, 0], y - anchor[:, 1]
        along = np.floor((dx * axis[:, 0] + dy * axis[:, 1]) / look.period).astype(np.intp)
        across = np.floor((dy * axis[:, 0] - dx * axis[:, 1]) / look.period).astype(np.intp)
        pattern = (along + (part == TORSO) * across) % 2
    frames[t, y, x] = look.colors[part, pattern]
    return frames


@dataclasses.dataclass
class SyntheticVideo:
    """One rendered video of any family and its ground truth."""

    name: str
    frames: np.ndarray  # uint8 [T, H, W, 3]
    labels: np.ndarray  # uint8 [T, H, W]
    landmarks: np.ndarray  # float32 [T, J, 2]
    landmark_visible: np.ndarray  # bool [T, J]
    part_colors: np.ndarray  # uint8 [P + 1, 2, 3]: each part's two colours (row 0 unused)

    @property
    def mask(self) -> np.ndarray:
        """The foreground masks, bool [T, H, W]: pixels of any part."""
        return self.labels > 0


def video_name(identity: int, clip: int, prefix: str = "puppet") -> str:
    """`puppet00003#clip01`: the part before `#` names the identity (for `id_sampling`).

    Args:
      identity: Identity number.
      clip: Clip number of that identity.
      prefix: The name's prefix (the family's).

    Returns:
      The video name.
    """
    return f"{prefix}{identity:05d}#clip{clip:02d}"


def render_puppet_video(
    identity: int,
    clip: int = 0,
    *,
    num_frames: int = 32,
    size: int = 64,
    seed: int = 0,
    part_style: str = "textured",
) -> SyntheticVideo:
    """Renders one puppet video; the same arguments always give the same video.

    Args:
      identity: Which puppet (its appearance is seeded by `seed` and `identity`).
      clip: Which clip of that puppet (its motion is seeded by `seed`, `identity` and `clip`).
      num_frames: Frames T.
      size: Side of the square frames in pixels.
      seed: Seed of the whole data set.
      part_style: "textured" or "flat" (one colour per part).

    Returns:
      The frames and their ground truth.

    Raises:
      ValueError: `part_style` is neither "textured" nor "flat".
    """
    if part_style not in ("textured", "flat"):
        raise ValueError(f"part_style must be 'textured' or 'flat', got {part_style!r}")
    look = _appearance(np.random.default_rng([seed, identity, 0xA11]), size)
    rng = np.random.default_rng([seed, identity, clip, 0xB0D])
    background = background_texture(rng, size)
    pose = _pose(rng, look, size, num_frames)
    labels = rasterise([(part, pose.polygons[part]) for part in DRAW_ORDER], size, num_frames)
    frames = _paint(labels, pose, look, background, flat=part_style == "flat")
    visible = landmark_visibility(pose.joints, labels, JOINT_PARTS)
    return SyntheticVideo(video_name(identity, clip), frames, labels, pose.joints, visible, look.colors)


@dataclasses.dataclass(frozen=True)
class Family:
    """A procedurally rendered video family and the names of its ground truth.

    Attributes:
      name: The family's name (`coseg-synth --family`).
      render: `(identity, clip, *, num_frames, size, seed, part_style) -> SyntheticVideo`,
        deterministic in its arguments.
      prefix: Its videos are named `video_name(identity, clip, prefix)`.
      part_names: The name of each label; label 0 is the background.
      joint_names: The landmark names.
      joint_parts: Per landmark, the labels of the parts it lies on.
      draw_order: The label of each drawn layer, back to front.
    """

    name: str
    render: Callable[..., SyntheticVideo]
    prefix: str
    part_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    joint_parts: tuple[tuple[int, ...], ...]
    draw_order: tuple[int, ...]

    def info(self) -> dict[str, Any]:
        """The family's part of `ground_truth/info.json`."""
        return {
            "family": self.name,
            "part_names": list(self.part_names),
            "joint_names": list(self.joint_names),
            "joint_parts": [[self.part_names[p] for p in parts] for parts in self.joint_parts],
            "draw_order": [self.part_names[p] for p in self.draw_order],
        }


FAMILY = Family("puppets", render_puppet_video, "puppet", PART_NAMES, JOINT_NAMES, JOINT_PARTS, DRAW_ORDER)
# The module defining each family's `FAMILY`, imported when the family is asked for.
FAMILY_MODULES = {"puppets": __name__, "heads": "coseg_tf.data.heads"}
FAMILIES = tuple(FAMILY_MODULES)


def get_family(name: str) -> Family:
    """The family called `name` (one of `FAMILIES`).

    Args:
      name: A family name, e.g. "puppets".

    Returns:
      The family's `FAMILY` (its module is imported on demand).

    Raises:
      ValueError: No family has that name.
    """
    if name not in FAMILY_MODULES:
        raise ValueError(f"unknown synthetic family {name!r}; choose from {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILY_MODULES[name]).FAMILY


def _ffmpeg_args(
    fmt: str, size: int, fps: float, num_frames: int, num_videos: int, pattern: str
) -> list[str]:
    import imageio_ffmpeg

    args = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo"]
    args += ["-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", str(fps), "-i", "-"]
    if fmt == "avi":
        args += ["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p"]
    else:
        args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "12", "-preset", "veryfast"]
        args += ["-force_key_frames", f"expr:eq(mod(n,{num_frames}),0)"]
    if num_videos > 1:
        # One encoder process for the whole split, cut into one file per video: starting
        # FFmpeg once per video would dominate the generation time.
        splits = ",".join(str(num_frames * k) for k in range(1, num_videos))
        args += ["-f", "segment", "-segment_frames", splits, "-reset_timestamps", "1"]
        args += ["-segment_format", {"mp4": "mp4", "mov": "mov", "avi": "avi"}[fmt]]
    return args + [pattern]


class _SplitWriter:
    """Writes the videos of one split in every requested format, plus the ground truth."""

    def __init__(
        self,
        root: str,
        split: str,
        names: Sequence[str],
        formats: Sequence[str],
        size: int,
        fps: float,
        num_frames: int,
    ) -> None:
        self.root, self.split, self.names, self.formats = root, split, list(names), list(formats)
        self.fps = fps
        self.gt_dir = os.path.join(root, "ground_truth", split)
        os.makedirs(self.gt_dir, exist_ok=True)
        self.dirs = {fmt: os.path.join(root, fmt, split) for fmt in formats}
        for folder in self.dirs.values():
            os.makedirs(folder, exist_ok=True)
        self.encoders: dict[str, tuple[subprocess.Popen, str]] = {}
        for fmt in formats:
            if fmt in VIDEO_FORMATS:
                tmp = tempfile.mkdtemp(prefix=".segments-", dir=self.dirs[fmt])
                pattern = (
                    os.path.join(tmp, f"%06d.{fmt}") if len(names) > 1 else os.path.join(tmp, f"000000.{fmt}")
                )
                args = _ffmpeg_args(fmt, size, fps, num_frames, len(names), pattern)
                self.encoders[fmt] = (subprocess.Popen(args, stdin=subprocess.PIPE), tmp)

    def write(self, video: SyntheticVideo) -> None:
        for fmt in self.formats:
            folder = self.dirs[fmt]
            if fmt in self.encoders:
                self.encoders[fmt][0].stdin.write(np.ascontiguousarray(video.frames).tobytes())
            elif fmt == "frames":
                video_io.write_video(os.path.join(folder, video.name), video.frames, self.fps, folder=True)
            else:
                video_io.write_video(os.path.join(folder, f"{video.name}.{fmt}"), video.frames, self.fps)
        np.savez_compressed(
            os.path.join(self.gt_dir, f"{video.name}.npz"),
            labels=video.labels,
            mask=video.mask,
            landmarks=video.landmarks,
            landmark_visible=video.landmark_visible,
            part_colors=video.part_colors,
        )

    def close(self) -> None:
        for fmt, (process, tmp) in self.encoders.items():
            process.stdin.close()
            if process.wait() != 0:
                raise RuntimeError(f"FFmpeg failed writing the {fmt} videos of split {self.split}")
            segments = sorted(n for n in os.listdir(tmp) if n.endswith(f".{fmt}"))
            if len(segments) != len(self.names):
                raise RuntimeError(f"FFmpeg wrote {len(segments)} {fmt} files for {len(self.names)} videos")
            for segment, name in zip(segments, self.names, strict=True):
                os.replace(os.path.join(tmp, segment), os.path.join(self.dirs[fmt], f"{name}.{fmt}"))
            shutil.rmtree(tmp)


def _ordered_render(
    render: Callable[..., SyntheticVideo], jobs: Sequence[tuple[int, int]], num_threads: int, **kwargs: Any
) -> Iterator[SyntheticVideo]:
    window = max(1, 2 * num_threads)
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_threads) as pool:
        pending: list[concurrent.futures.Future] = []
        for identity, clip in jobs:
            pending.append(pool.submit(render, identity, clip, **kwargs))
            if len(pending) >= window:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def generate_synthetic_dataset(
    root: str,
    *,
    num_videos: int,
    num_frames: int,
    size: int = 64,
    seed: int = 0,
    formats: Sequence[str] = ("mp4", "png"),
    test_fraction: float = 0.2,
    clips_per_identity: int = 1,
    part_style: str = "textured",
    fps: float = 25.0,
    num_threads: int = 2,
    family: str = "puppets",
) -> dict[str, str]:
    """Writes a synthetic dataset (puppets, or another of `FAMILIES`) under `root`.

    Returns {format: dataset root_dir}.

    Layout: `root/<format>/{train,test}/<name>.<ext>` for each format (`png`/`jpg`: frames
    side by side; `frames`: a folder of PNGs; `mp4`/`mov`: H.264; `avi`: MJPEG; `gif`),
    `root/ground_truth/{train,test}/<name>.npz` and `root/ground_truth/info.json`. Point
    `dataset_params.root_dir` at `root/<format>`. Identities (not clips) are split, a seeded
    `test_fraction` of them going to test. Frame size must be even for mp4/mov/avi.

    Args:
      root: Output folder (local, `file://` or a cloud URL; a cloud set is written to a temporary folder
          first).
      num_videos: Videos to render, over all splits.
      num_frames: Frames per video.
      size: Side of the square frames in pixels.
      seed: Seed of the whole set.
      formats: Layouts to write, from `FORMATS`; duplicates are ignored.
      test_fraction: Share of identities that go to the test split.
      clips_per_identity: Videos rendered per identity.
      part_style: "textured" or "flat".
      fps: Frame rate of the video files.
      num_threads: Threads rendering and writing videos.
      family: A family of `FAMILIES`.

    Returns:
      {format: the dataset root_dir of that layout}.

    Raises:
      ValueError: An unknown format, `num_videos` < 1, `num_frames` < 2, `size` < 16, or an odd `size` with
        mp4/mov/avi.
    """
    chosen = get_family(family)
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown formats {unknown}; choose from {FORMATS}")
    if num_videos < 1 or num_frames < 2 or size < 16:
        raise ValueError("need num_videos >= 1, num_frames >= 2 and size >= 16")
    if size % 2 and any(f in VIDEO_FORMATS for f in formats):
        raise ValueError(f"mp4/mov/avi need an even frame size, got {size}")
    remote = fileio.is_remote(root)
    local_root = tempfile.mkdtemp(prefix="coseg-synth-") if remote else fileio.local_path(root)
    num_identities = math.ceil(num_videos / clips_per_identity)
    jobs = [(v // clips_per_identity, v % clips_per_identity) for v in range(num_videos)]
    order = np.random.default_rng([seed, 0x5E7]).permutation(num_identities)
    num_test = round(test_fraction * num_identities)
    if test_fraction > 0 and num_identities >= 2:
        num_test = min(max(num_test, 1), num_identities - 1)
    test_ids = set(order[:num_test].tolist())
    render_kwargs = dict(num_frames=num_frames, size=size, seed=seed, part_style=part_style)
    for split in ("train", "test"):
        split_jobs = [job for job in jobs if (job[0] in test_ids) == (split == "test")]
        if not split_jobs:
            continue
        names = [video_name(*job, chosen.prefix) for job in split_jobs]
        writer = _SplitWriter(local_root, split, names, formats, size, fps, num_frames)
        try:
            for video in _ordered_render(chosen.render, split_jobs, num_threads, **render_kwargs):
                writer.write(video)
        finally:
            writer.close()
    info = {
        **chosen.info(),
        "size": size,
        "num_frames": num_frames,
        "num_videos": num_videos,
        "clips_per_identity": clips_per_identity,
        "seed": seed,
        "part_style": part_style,
        "formats": formats,
        "coordinates": "landmarks are (x, y) pixels; pixel centres at integer coordinates",
    }
    with open(os.path.join(local_root, "ground_truth", "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    if remote:
        _copy_tree(local_root, root)
        shutil.rmtree(local_root)
    return {fmt: f"{root.rstrip('/')}/{fmt}" for fmt in formats}


def generate_once(
    root: str,
    *,
    num_videos: int,
    num_frames: int,
    size: int = 64,
    seed: int = 0,
    formats: Sequence[str] = ("png",),
    family: str = "puppets",
) -> dict[str, str]:
    """The synthetic set under a local `root`: generated unless `root` holds it already.

    A set is recognised by its `ground_truth/info.json`, so that a command run again on its
    working folder reuses the set and never mixes in one made with other settings.

    Args:
      root: Local folder of the set (as `generate_synthetic_dataset`'s).
      num_videos: Videos over both splits.
      num_frames: Frames per video.
      size: Frame height and width.
      seed: The data seed.
      formats: Layouts (see `generate_synthetic_dataset`).
      family: One of `FAMILIES`.

    Returns:
      {format: dataset root_dir}, as `generate_synthetic_dataset`.

    Raises:
      DatasetError: If `root` holds a set made with other settings or without these formats;
        the message names what differs.
    """
    wanted = dict(family=family, num_videos=num_videos, num_frames=num_frames, size=size, seed=seed)
    info_path = os.path.join(root, "ground_truth", "info.json")
    if not os.path.exists(info_path):
        return generate_synthetic_dataset(root, formats=formats, **wanted)
    with open(info_path) as f:
        info = json.load(f)
    found = {key: info.get(key, "puppets" if key == "family" else None) for key in wanted}
    theirs = {key: value for key, value in found.items() if value != wanted[key]}
    if theirs:
        ours = {key: wanted[key] for key in theirs}
        raise video_io.DatasetError(f"{root} holds a set made with {theirs}, not {ours}")
    missing = [fmt for fmt in formats if fmt not in info.get("formats", [])]
    if missing:
        raise video_io.DatasetError(f"{root} holds a set without the formats {missing}")
    return {fmt: f"{root.rstrip('/')}/{fmt}" for fmt in formats}


def _copy_tree(local: str, remote: str) -> None:
    import tensorflow as tf

    for folder, _, files in os.walk(local):
        relative = os.path.relpath(folder, local)
        target = remote.rstrip("/") if relative == "." else f"{remote.rstrip('/')}/{relative}"
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), f"{target}/{name}", overwrite=True)


def load_ground_truth(root: str, split: str, name: str) -> dict[str, np.ndarray]:
    """The ground truth of one synthetic video (`root` as given to the generator).

    Args:
      root: The generator's `root`.
      split: "train" or "test".
      name: The video's name.

    Returns:
      The arrays of its `.npz` file (`labels`, `landmarks`, `landmark_visible`, ...).
    """
    with np.load(os.path.join(root, "ground_truth", split, f"{name}.npz")) as data:
        return {key: data[key] for key in data.files}
