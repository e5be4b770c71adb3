"""A second synthetic video family with ground truth: talking heads.

Each video shows a head-and-shoulders figure, front view, of 7 parts (hair, face, the two
eyes, mouth, neck, shoulders) on its own static textured background. Unlike the puppets'
limbs, the parts are nested (eyes and mouth inside the face, hair around it), differ widely
in size, and move in other ways: the eyes blink shut (the eye part disappears for a frame
and shrinks in the frames around it), the jaw opens (the mouth grows and the chin drops),
the head turns (eyes and mouth slide sideways and the far eye narrows), tilts and sways on
the neck, and the shoulders move less than the head.

Appearance is per identity (face width and length, neck, shoulder width, hair colour and
shape: cap height, long or short, with or without a fringe; skin, eye, lip and clothing
colours; the light's side); background and motion are per clip. Every part has two colours
(`part_colors`) laid out by a pattern that moves with it: hair strands, the shaded side of
the face, iris and white of the eye, lips and the open mouth's inside, the shadow under the
chin, the clothes' stripes. Left and right are as seen in the image.

Videos are named `head<identity>#clip<k>` and written by the puppets' writer
(`synthetic.generate_synthetic_dataset(..., family="heads")`): the same layouts, ground-truth
arrays and `info.json`, so that training and evaluation read them unchanged. Everything
derives from `(seed, identity, clip)`. TensorFlow is not imported.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from coseg_tf.data import synthetic

PART_NAMES = ("background", "hair", "face", "left_eye", "right_eye", "mouth", "neck", "shoulders")
NUM_PARTS = len(PART_NAMES) - 1
HAIR, FACE, L_EYE, R_EYE, MOUTH, NECK, SHOULDERS = range(1, 8)

JOINT_NAMES = (
    "head_top",
    "left_eye",
    "right_eye",
    "nose",
    "mouth_left",
    "mouth_right",
    "chin",
    "neck",
    "left_shoulder",
    "right_shoulder",
)
# The parts each landmark lies on (a shut eye's centre shows the face).
JOINT_PARTS = (
    (HAIR, FACE),
    (L_EYE, FACE),
    (R_EYE, FACE),
    (FACE,),
    (MOUTH, FACE),
    (MOUTH, FACE),
    (FACE, NECK),
    (NECK, SHOULDERS),
    (SHOULDERS,),
    (SHOULDERS,),
)
# Back to front: the clothes cover the neck's base, long hair falls in front of the shoulders,
# the face covers the hair behind it and the fringe covers the forehead.
DRAW_ORDER = (NECK, SHOULDERS, HAIR, FACE, HAIR, L_EYE, R_EYE, MOUTH)

_ELLIPSE_POINTS = 20
# An eye narrower than this (half height, pixels) is shut: drawn as skin.
_SHUT = 0.5


@dataclasses.dataclass(frozen=True)
class Look:
    """Per-identity shape and colours; lengths in pixels, head-frame v pointing down."""

    face: tuple[float, float]  # half width, half height
    hair: tuple[float, float, float]  # cap half width, cap half height, cap top above the face
    long_hair: float  # how far below the face centre long hair falls; 0 = short hair
    fringe: float  # the fringe's lower edge above the face centre; 0 = none
    eye: tuple[float, float]  # half width, half height when open
    eye_azimuth: float  # the eyes' angle from the face's midline on the head's sphere, radians
    eye_level: float  # v of the eyes
    mouth: tuple[float, float, float]  # half width, v, how far the lower lip drops
    neck: tuple[float, float]  # half width, length below the chin
    shoulders: tuple[float, float]  # half width, drop from the neck's base to the arms
    light: float  # +1 or -1: the shaded side of the face
    period: float  # the clothes' stripe period
    colors: np.ndarray  # uint8 [8, 2, 3]


def _rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV rows [N, 3] (hue in degrees, saturation and value in [0, 1]) -> uint8 RGB [N, 3]."""
    rgb = cv2.cvtColor(np.asarray(hsv, np.float32)[None], cv2.COLOR_HSV2RGB)[0]
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _colors(rng: np.random.Generator) -> np.ndarray:
    skin = np.array([rng.uniform(12, 35), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95)])
    if rng.uniform() < 0.7:  # natural: black, brown, auburn, blond
        hair = np.array([rng.uniform(15, 45), rng.uniform(0.3, 0.8), rng.uniform(0.12, 0.75)])
    else:  # dyed
        hair = np.array([rng.uniform(0, 360), rng.uniform(0.6, 0.9), rng.uniform(0.5, 0.9)])
    iris = np.array([rng.choice([25.0, 120.0, 210.0]), rng.uniform(0.5, 0.8), rng.uniform(0.25, 0.6)])
    lips = np.array([rng.uniform(345, 370) % 360, rng.uniform(0.4, 0.7), rng.uniform(0.55, 0.8)])
    cloth = np.array([rng.uniform(0, 360), rng.uniform(0.5, 0.9), rng.uniform(0.55, 0.9)])
    cloth_2 = np.array(
        [(cloth[0] + rng.uniform(60, 300)) % 360, cloth[1], cloth[2] * rng.uniform(0.45, 0.65)]
    )

    def darker(hsv: np.ndarray, factor: float) -> np.ndarray:
        return np.array([hsv[0], hsv[1], hsv[2] * factor])

    rows = {
        HAIR: (hair, darker(hair, 0.65)),
        FACE: (skin, darker(skin, 0.8)),
        L_EYE: (np.array([0.0, 0.0, rng.uniform(0.88, 0.97)]), iris),
        MOUTH: (lips, np.array([rng.uniform(350, 360), rng.uniform(0.5, 0.8), rng.uniform(0.15, 0.3)])),
        NECK: (darker(skin, 0.78), darker(skin, 0.62)),
        SHOULDERS: (cloth, cloth_2),
    }
    rows[R_EYE] = rows[L_EYE]
    colors = np.zeros((NUM_PARTS + 1, 2, 3), np.uint8)
    for part, pair in rows.items():
        colors[part] = _rgb(np.stack(pair))
    return colors


def _look(rng: np.random.Generator, size: int) -> Look:
    face_w = size * rng.uniform(0.14, 0.19)
    face_h = face_w * rng.uniform(1.2, 1.4)
    eye_w = face_w * rng.uniform(0.2, 0.26)
    return Look(
        face=(face_w, face_h),
        hair=(
            face_w * rng.uniform(1.08, 1.3),
            face_h * rng.uniform(0.75, 1.15),
            face_h * rng.uniform(0.1, 0.4),
        ),
        long_hair=face_h * rng.uniform(1.3, 1.9) if rng.uniform() < 0.4 else 0.0,
        fringe=face_h * rng.uniform(0.4, 0.6) if rng.uniform() < 0.5 else 0.0,
        eye=(eye_w, eye_w * rng.uniform(0.55, 0.75)),
        eye_azimuth=float(np.arcsin(rng.uniform(0.38, 0.48))),
        eye_level=-face_h * rng.uniform(0.05, 0.2),
        mouth=(
            face_w * rng.uniform(0.3, 0.42),
            face_h * rng.uniform(0.45, 0.55),
            face_h * rng.uniform(0.25, 0.32),
        ),
        neck=(face_w * rng.uniform(0.4, 0.55), face_h * rng.uniform(0.4, 0.65)),
        shoulders=(size * rng.uniform(0.3, 0.42), size * rng.uniform(0.1, 0.16)),
        light=float(rng.choice([-1.0, 1.0])),
        period=max(2.5, size * rng.uniform(1 / 16, 1 / 10)),
        colors=_colors(rng),
    )


@dataclasses.dataclass
class Frame:
    """A moving 2D frame per video frame: origin and unit axes (x right, v down), [T, 2] each."""

    origin: np.ndarray
    right: np.ndarray
    down: np.ndarray

    def to_image(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Frame coordinates (u, v), each broadcasting to [T, N] ([N]: the same in every frame).

        Args:
          u: Coordinates along `right`, broadcasting with `v` to [T, N] or [N].
          v: Coordinates along `down`.

        Returns:
          float64 [T, N, 2] image points (x, y).
        """
        u, v = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(v, np.float64))
        return self.origin[:, None] + u[..., None] * self.right[:, None] + v[..., None] * self.down[:, None]

    def point(self, u: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
        """One point per frame: (u, v), each a scalar or [T], -> image points [T, 2].

        Args:
          u: Coordinate along `right`: a scalar or [T].
          v: Coordinate along `down`: a scalar or [T].

        Returns:
          float64 [T, 2] image points (x, y).
        """
        return self.to_image(np.reshape(u, (-1, 1)), np.reshape(v, (-1, 1)))[:, 0]

    def from_image(self, t: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (x, y) of frames t -> their frame coordinates (u, v).

        Args:
          t: Frame indices.
          x: Pixel x, broadcasting with `t`.
          y: Pixel y, broadcasting with `t`.

        Returns:
          (u, v) frame coordinates.
        """
        dx, dy = x - self.origin[t, 0], y - self.origin[t, 1]
        return dx * self.right[t, 0] + dy * self.right[t, 1], dx * self.down[t, 0] + dy * self.down[t, 1]


def _rotated(origin: np.ndarray, angle: np.ndarray) -> Frame:
    """A frame at `origin` turned by `angle` (radians, clockwise on screen)."""
    right = np.stack([np.cos(angle), np.sin(angle)], -1)
    down = np.stack([-np.sin(angle), np.cos(angle)], -1)
    return Frame(origin, right, down)


def _ellipse(frame: Frame, center: tuple, half: tuple, arc: tuple[float, float] | None = None) -> np.ndarray:
    """Polygon [T, N, 2] of an axis-aligned ellipse in `frame`; entries may be [T] arrays.

    `arc` = (start, end) angles keeps that arc only, closed by its chord (angles grow from
    +u towards +v, i.e. clockwise on screen; the upper half is (pi, 2 pi)).
    """
    if arc is None:
        psi = np.linspace(0, 2 * np.pi, _ELLIPSE_POINTS, endpoint=False)
    else:
        psi = np.linspace(*arc, _ELLIPSE_POINTS // 2 + 1)
    cu, cv, hu, hv = (np.asarray(a, np.float64).reshape(-1, 1) for a in (*center, *half))
    return frame.to_image(cu + hu * np.cos(psi), cv + hv * np.sin(psi))


def _rectangle(frame: Frame, u: tuple, v: tuple) -> np.ndarray:
    """Polygon [T, 4, 2] of u in [u0, u1], v in [v0, v1] in `frame`; entries may be [T] arrays."""
    (u0, u1), (v0, v1) = ((np.asarray(a, np.float64).reshape(-1, 1) for a in pair) for pair in (u, v))
    return frame.to_image(np.concatenate([u0, u1, u1, u0], 1), np.concatenate([v0, v0, v1, v1], 1))


@dataclasses.dataclass
class Motion:
    """Per-frame state of a clip ([T] arrays unless noted)."""

    head: Frame  # origin at the face's centre
    body: Frame  # origin at the neck's base, on the shoulders' top
    yaw: np.ndarray  # head turn, radians (the face's features slide by face width * sin(yaw))
    jaw: np.ndarray  # mouth opening in [0, 1]
    openness: np.ndarray  # eye opening in [0, 1]; 0 at the middle of a blink
    gaze: np.ndarray  # the irises' sideways shift in [-1, 1]


def _blinks(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """Eye opening per frame: 1, dropping to 0.5 and 0 around each blink (at least one per clip)."""
    count = max(1, round(num_frames / rng.uniform(10, 16)))
    middles = rng.choice(num_frames, size=min(count, num_frames), replace=False)
    distance = np.abs(np.arange(num_frames)[:, None] - middles[None]).min(1)
    return np.select([distance == 0, distance == 1], [0.0, 0.5], 1.0)


def _motion(rng: np.random.Generator, look: Look, size: int, num_frames: int) -> Motion:
    curves = synthetic.smooth_curves(rng, num_frames, 9)
    face_h = look.face[1]
    # Framing per clip, as cameras place people: the hair's top at rest 4-22% of the frame
    # down, the figure up to 15% off centre; the head centred over the neck's base.
    base_y = size * rng.uniform(0.04, 0.22) + look.hair[2] + 1.8 * face_h + look.neck[1]
    centre_x = size * (0.5 + rng.uniform(-0.15, 0.15))
    body_origin = np.stack(
        [
            centre_x + size * rng.uniform(0.015, 0.035) * curves[0],
            base_y + size * rng.uniform(0.005, 0.02) * curves[1],
        ],
        -1,
    )
    body = _rotated(body_origin, rng.uniform(0.01, 0.04) * curves[2])
    # The head pivots on the neck (tilt) and sways and nods relative to the body: it moves about
    # twice as far as the shoulders.
    tilt = rng.uniform(-0.05, 0.05) + rng.uniform(0.12, 0.25) * curves[3]
    neck_top = body.point(
        size * rng.uniform(0.03, 0.06) * curves[4], rng.uniform(0.5, 1.5) * curves[5] - look.neck[1]
    )
    angle = _angle(body) + tilt
    head = _rotated(_rotated(neck_top, angle).point(0.0, -0.8 * face_h), angle)
    yaw = rng.uniform(-0.1, 0.1) + rng.uniform(0.3, 0.6) * curves[6]
    speaking = np.clip(0.75 + 0.5 * curves[7], 0.5, 1.0)  # louder and quieter, never silent
    t = np.arange(num_frames)
    syllables = 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(1 / 10, 1 / 5) * t + rng.uniform(0, 2 * np.pi)))
    return Motion(head, body, yaw, speaking * syllables, _blinks(rng, num_frames), curves[8])


def _angle(frame: Frame) -> np.ndarray:
    """The rotation [T] of a frame made by `_rotated`."""
    return np.arctan2(frame.right[:, 1], frame.right[:, 0])


@dataclasses.dataclass
class Shapes:
    """Polygons of the drawn layers and the landmarks."""

    layers: list[tuple[int, np.ndarray]]
    landmarks: np.ndarray  # float32 [T, J, 2]
    features: dict[str, np.ndarray]  # head-frame geometry the painter needs, [T] each


def _shapes(look: Look, motion: Motion, size: int) -> Shapes:
    face_w, face_h = look.face
    head, body, yaw, jaw = motion.head, motion.body, motion.yaw, motion.jaw
    num_frames = len(yaw)
    zeros = np.zeros(num_frames)
    chin = face_h + jaw * look.mouth[2]  # the lower half of the face stretches as the jaw drops
    face_half_w = face_w * (0.9 + 0.1 * np.cos(yaw))
    psi = np.linspace(0, 2 * np.pi, _ELLIPSE_POINTS, endpoint=False)
    face = head.to_image(
        face_half_w[:, None] * np.cos(psi), np.where(np.sin(psi) > 0, chin[:, None], face_h) * np.sin(psi)
    )

    def slide(azimuth: float) -> tuple[np.ndarray, np.ndarray]:
        """A feature's u and foreshortening on the head's sphere, turned by the yaw."""
        angle = azimuth + yaw
        return 0.95 * face_half_w * np.sin(angle), np.clip(np.cos(angle), 0.3, 1.0)

    eyes = []
    for sign in (-1.0, 1.0):
        u, shrink = slide(sign * look.eye_azimuth)
        half_h = look.eye[1] * motion.openness
        polygon = _ellipse(head, (u, zeros + look.eye_level), (look.eye[0] * shrink, half_h))
        polygon[half_h < _SHUT] = np.nan
        eyes.append((u, shrink, polygon))
    mouth_u, mouth_shrink = slide(0.0)
    mouth_w = look.mouth[0] * (0.6 + 0.4 * mouth_shrink)
    lip = 0.8
    mouth_v = look.mouth[1] + 0.5 * jaw * look.mouth[2]  # the upper lip stays, the lower one drops
    mouth_h = lip + 0.5 * jaw * look.mouth[2]
    mouth = _ellipse(head, (mouth_u, mouth_v), (mouth_w, mouth_h))

    hair_w, hair_h, hair_above = look.hair
    hair_u = -0.15 * face_w * np.sin(yaw)  # the back of the head shows on the far side
    hair_v = -face_h - hair_above + hair_h
    layers_hair = [_ellipse(head, (hair_u, zeros + hair_v), (zeros + hair_w, zeros + hair_h))]
    if look.long_hair:
        for inner, outer in ((-0.72 * face_w, -hair_w), (0.72 * face_w, hair_w)):
            layers_hair.append(
                _rectangle(head, (hair_u + inner, hair_u + outer), (zeros + hair_v, zeros + look.long_hair))
            )
    fringe = None
    if look.fringe:
        level = look.fringe / face_h
        fringe = _ellipse(
            head,
            (zeros, zeros),
            (1.02 * face_half_w, zeros + 1.02 * face_h),
            arc=(np.pi + np.arcsin(level), 2 * np.pi - np.arcsin(level)),
        )

    neck_w, neck_len = look.neck
    neck_top = head.to_image(np.array([-neck_w, neck_w]), 0.55 * face_h)
    neck_bottom = body.to_image(np.array([1.15 * neck_w, -1.15 * neck_w]), 3.0)
    neck = np.concatenate([neck_top, neck_bottom], 1)
    shoulder_w, shoulder_drop = look.shoulders
    arc = _ellipse(
        body,
        (zeros, zeros + shoulder_drop),
        (zeros + shoulder_w, zeros + shoulder_drop),
        arc=(np.pi, 2 * np.pi),
    )
    below = body.to_image(np.array([-shoulder_w, shoulder_w]), size)  # well past the frame's bottom
    shoulders = np.concatenate([arc, below[:, ::-1]], 1)

    layers = [(NECK, neck), (SHOULDERS, shoulders)]
    layers += [(HAIR, polygon) for polygon in layers_hair]
    layers.append((FACE, face))
    if fringe is not None:
        layers.append((HAIR, fringe))
    layers += [(L_EYE, eyes[0][2]), (R_EYE, eyes[1][2]), (MOUTH, mouth)]

    # On the shoulders' arc at 0.7 of their half width, one pixel inside.
    shoulder_v = shoulder_drop * (1 - np.sqrt(1 - 0.7**2)) + 1.0
    points = [
        head.point(0.0, -face_h),
        head.point(eyes[0][0], look.eye_level),
        head.point(eyes[1][0], look.eye_level),
        head.point(mouth_u, 0.5 * (look.eye_level + look.mouth[1])),
        head.point(mouth_u - mouth_w + 0.5, mouth_v),
        head.point(mouth_u + mouth_w - 0.5, mouth_v),
        head.point(0.0, chin - 0.5),
        body.origin,
        body.point(-0.7 * shoulder_w, shoulder_v),
        body.point(0.7 * shoulder_w, shoulder_v),
    ]
    features = {
        "eye_u_left": eyes[0][0],
        "eye_u_right": eyes[1][0],
        "eye_shrink_left": eyes[0][1],
        "eye_shrink_right": eyes[1][1],
        "nose_u": mouth_u,
        "mouth_v": mouth_v,
        "mouth_w": mouth_w,
        "mouth_h": mouth_h,
        "lip": np.full(num_frames, lip),
        "chin": chin,
    }
    return Shapes(layers, np.stack(points, 1).astype(np.float32), features)


def _paint(
    labels: np.ndarray, look: Look, motion: Motion, shapes: Shapes, background: np.ndarray, flat: bool
) -> np.ndarray:
    """Colours each visible part with one of its two colours by a pattern that moves with it."""
    frames = np.repeat(background[None], labels.shape[0], axis=0)
    t, y, x = np.nonzero(labels)
    part = labels[t, y, x].astype(np.intp)
    pattern = np.zeros_like(part)
    if not flat:
        f = {name: value[t] for name, value in shapes.features.items()}
        u, v = motion.head.from_image(t, x, y)
        face_w = look.face[0]
        strands = np.floor(u / max(1.5, 0.15 * face_w)) % 2
        shaded = look.light * (u - f["nose_u"]) > 0.35 * face_w
        iris = []
        for side in ("left", "right"):
            centre = f[f"eye_u_{side}"] + 0.35 * look.eye[0] * f[f"eye_shrink_{side}"] * motion.gaze[t]
            iris.append((u - centre) ** 2 + (v - look.eye_level) ** 2 < (0.95 * look.eye[1]) ** 2)
        inner_w, inner_h = f["mouth_w"] - f["lip"], f["mouth_h"] - f["lip"]
        inside = (inner_h > 0.3) & (
            ((u - f["nose_u"]) / inner_w) ** 2 + ((v - f["mouth_v"]) / np.maximum(inner_h, 1e-6)) ** 2 < 1
        )
        under_chin = v - f["chin"] < 0.35 * look.neck[1]
        _, body_v = motion.body.from_image(t, x, y)
        stripes = np.floor(body_v / look.period) % 2
        pattern = np.select(
            [part == HAIR, part == FACE, part == L_EYE, part == R_EYE, part == MOUTH, part == NECK],
            [strands, shaded, iris[0], iris[1], inside, under_chin],
            stripes,
        ).astype(np.intp)
    frames[t, y, x] = look.colors[part, pattern]
    return frames


def render_head_video(
    identity: int,
    clip: int = 0,
    *,
    num_frames: int = 32,
    size: int = 64,
    seed: int = 0,
    part_style: str = "textured",
) -> synthetic.SyntheticVideo:
    """Renders one talking-head video; the same arguments always give the same video.

    Args:
      identity: Sets the appearance (shape, hair and colours).
      clip: With the identity, sets the background and the motion.
      num_frames: Frames of the video.
      size: Frame height and width in pixels.
      seed: Seed of the whole set.
      part_style: "textured" (each part's two colours in its pattern) or "flat" (one colour).

    Returns:
      The frames and their ground truth.

    Raises:
      ValueError: `part_style` is neither.
    """
    if part_style not in ("textured", "flat"):
        raise ValueError(f"part_style must be 'textured' or 'flat', got {part_style!r}")
    look = _look(np.random.default_rng([seed, identity, 0x4EAD]), size)
    rng = np.random.default_rng([seed, identity, clip, 0x7A1C])
    background = synthetic.background_texture(rng, size)
    motion = _motion(rng, look, size, num_frames)
    shapes = _shapes(look, motion, size)
    labels = synthetic.rasterise(shapes.layers, size, num_frames)
    frames = _paint(labels, look, motion, shapes, background, flat=part_style == "flat")
    visible = synthetic.landmark_visibility(shapes.landmarks, labels, JOINT_PARTS)
    name = synthetic.video_name(identity, clip, FAMILY.prefix)
    return synthetic.SyntheticVideo(name, frames, labels, shapes.landmarks, visible, look.colors)


FAMILY = synthetic.Family(
    "heads", render_head_video, "head", PART_NAMES, JOINT_NAMES, JOINT_PARTS, DRAW_ORDER
)
