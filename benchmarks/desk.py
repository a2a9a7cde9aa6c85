"""Desk scenes: MNIST digits handwritten on real paper under a desk lamp, seen by a cheap camera.

    >>> import numpy as np
    >>> from benchmarks.desk import DeskScene, make_scene
    >>> digits = [np.pad(np.full((20, 4), 255, np.uint8), 4)] * 2      # two "1"s, MNIST layout
    >>> scene = make_scene(digits, [1, 1], np.random.default_rng(0))
    >>> scene.image.shape, scene.image.dtype, scene.truth
    ((480, 640, 3), dtype('uint8'), '11')

The measuring instrument of the frame benchmark (`python -m benchmarks.frames --scene desk`):
- paper: white, cream or tinted; plain, lined notebook (ruled lines and a margin line) or squared;
- ink: felt marker (thick), ballpoint (thin, blue or black), pencil (grey, faint, grainy); every
  stroke is re-drawn from the digit's skeleton at the pen's width, so a thin digit is thin, not
  merely small;
- 1-6 digits in a row (about 35-150 px tall in 640x480), sometimes touching or overlapping a little,
  with baseline jitter and slant; on lined paper the digits sit on a ruled line and cross others;
- light and camera: a lamp's gradient, a soft hand shadow, glare, tilt and perspective, defocus or
  motion blur, sensor noise, colour cast, JPEG.
About 10 % of scenes are blank (paper, lines, shadows only) and must read "". Everything is
deterministic given the Generator. Evaluation uses MNIST *test* digits (`scene_set`); anything
learned from scenes must use *training* digits (`scene_set(..., split="train")`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from benchmarks.synthetic import lamp

PAPERS = ("plain", "lined", "grid")
INKS = ("marker", "ballpoint", "pencil")
BLANK_RATE = 0.1  # share of scenes with no digit at all


@dataclass
class DeskScene:
    """One generated frame and what a perfect reader would say about it."""

    image: np.ndarray  # BGR uint8 HxWx3
    truth: str  # the digits left to right; "" for a blank scene
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, w, h per digit
    owner: np.ndarray | None = None  # uint8 HxW: k + 1 where digit k's ink is (coverage >= 0.5)
    paper: str = "plain"  # one of PAPERS
    ink: str = "marker"  # one of INKS ("" on a blank scene)


# ------------------------------------------------------------------------------------ strokes


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """Zhang-Suen's two sub-iterations as 256-entry tables: 8-neighbour code -> delete the pixel?
    Bit i of the code is neighbour P(i+2), clockwise from north (P2) to north-west (P9)."""
    tables = []
    for step in (0, 1):
        t = np.zeros(256, bool)
        for code in range(256):
            n = [(code >> i) & 1 for i in range(8)]
            b = sum(n)
            a = sum(n[i] == 0 and n[(i + 1) % 8] == 1 for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            c = (p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0) if step == 0 else \
                (p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0)
            t[code] = 2 <= b <= 6 and a == 1 and c
        tables.append(t)
    return tables[0], tables[1]


_TABLES = _thinning_tables()
# filter2D weights: the neighbour at each offset contributes its bit (P2 north = bit 0, clockwise)
_CODE = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a bool mask to a connected, 1-px skeleton."""
    img = mask.astype(np.float32)
    while True:
        changed = False
        for table in _TABLES:
            code = cv2.filter2D(img, -1, _CODE, borderType=cv2.BORDER_CONSTANT).astype(np.uint8)
            kill = (img > 0) & table[code]
            if kill.any():
                img[kill] = 0
                changed = True
        if not changed:
            return img > 0


def pen_stroke(digit: np.ndarray, height: float, width: float, angle: float) -> np.ndarray:
    """An MNIST digit (28x28 uint8, white on black) re-drawn with a pen `width` px wide -> float
    coverage 0..1, `height` px tall (its longest side, as MNIST scaled digits), rotated by `angle`."""
    ys, xs = np.nonzero(digit > 0)
    a = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255
    s = height / max(a.shape)
    size = (max(1, round(a.shape[1] * s)), max(1, round(a.shape[0] * s)))
    pad = int(0.25 * height + width) + 2
    big = cv2.copyMakeBorder(cv2.resize(a, size, interpolation=cv2.INTER_CUBIC), pad, pad, pad, pad,
                             cv2.BORDER_CONSTANT, value=0)
    m = cv2.getRotationMatrix2D((big.shape[1] / 2, big.shape[0] / 2), angle, 1.0)
    big = cv2.warpAffine(big, m, (big.shape[1], big.shape[0]), flags=cv2.INTER_LINEAR)
    skeleton = thin(big > 0.4)
    if not skeleton.any():
        return np.zeros((1, 1), np.float32)
    dist = cv2.distanceTransform((~skeleton).astype(np.uint8), cv2.DIST_L2, 5)
    cov = np.clip(width / 2 + 0.5 - dist, 0, 1)
    ys, xs = np.nonzero(cov > 0.01)
    return cov[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _ink(kind: str, height: float, rng: np.random.Generator) -> tuple[float, np.ndarray, float]:
    """(pen width px, BGR reflectance of the ink, opacity) for one scene's pen."""
    if kind == "marker":
        width = rng.uniform(0.08, 0.15) * height
        colour = rng.choice([(0.12, 0.1, 0.1), (0.45, 0.2, 0.1), (0.2, 0.15, 0.55), (0.2, 0.35, 0.15)])
        return max(2.5, width), np.array(colour, np.float32), rng.uniform(0.85, 1.0)
    if kind == "ballpoint":
        width = max(1.2, rng.uniform(0.025, 0.05) * height)
        colour = rng.choice([(0.55, 0.25, 0.12), (0.2, 0.18, 0.18)])  # blue or black
        return width, np.array(colour, np.float32), rng.uniform(0.7, 0.95)
    width = max(1.2, rng.uniform(0.03, 0.06) * height)  # pencil: grey graphite, faint
    return width, np.full(3, rng.uniform(0.35, 0.6), np.float32), rng.uniform(0.6, 0.9)


def _texture(rng: np.random.Generator, shape: tuple[int, int], scale: float, low: float) -> np.ndarray:
    """Random field in [low, 1]: smooth pen pressure (scale >= 4 px, made at 1/4 size) or
    per-pixel graphite grain (scale < 4)."""
    if scale < 4:
        noise = rng.random(shape, dtype=np.float32)
    else:
        small = rng.random((shape[0] // 4, shape[1] // 4), dtype=np.float32)
        noise = cv2.resize(cv2.GaussianBlur(small, (0, 0), scale / 4), shape[::-1])
        noise = (noise - noise.min()) / max(1e-6, float(np.ptp(noise)))
    return low + (1 - low) * noise


def _soft(shape: tuple[int, int], draw, sigma: float) -> np.ndarray:
    """A shape drawn by `draw(canvas, scale)` on a 1/4-size canvas, blurred by `sigma` full-size
    pixels, brought back to full size: float32 0..1 (shadows, glare)."""
    small = np.zeros((shape[0] // 4, shape[1] // 4), np.float32)
    draw(small, 0.25)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / 4), shape[::-1])


# ------------------------------------------------------------------------------------- paper


def _paper(rng: np.random.Generator, kind: str, size: tuple[int, int]):
    """HxWx3 float32 reflectance of the sheet with its printed lines, and (first rule's y, spacing)
    of a lined sheet (None otherwise): handwriting sits on those lines."""
    h, w = size
    tone = rng.choice(["white", "white", "cream", "tinted"])
    base = {"white": (0.95, 0.95, 0.95), "cream": (0.78, 0.9, 0.96),
            "tinted": tuple(rng.uniform(0.78, 0.95, 3))}[tone]
    paper = np.empty((h, w, 3), np.float32)
    paper[:] = np.array(base, np.float32) * rng.uniform(0.95, 1.02)
    if kind == "plain":
        return paper, None
    lines = np.zeros((h, w), np.uint8)
    spacing = int(rng.integers(24, 42) if kind == "lined" else rng.integers(16, 30))
    thick = int(rng.choice([1, 1, 2]))
    y0 = int(rng.integers(0, spacing))
    for y in range(y0, h, spacing):
        cv2.line(lines, (0, y), (w - 1, y), 255, thick, cv2.LINE_AA)
    if kind == "grid":
        for x in range(int(rng.integers(0, spacing)), w, spacing):
            cv2.line(lines, (x, 0), (x, h - 1), 255, thick, cv2.LINE_AA)
    colour = np.array(rng.choice([(0.85, 0.7, 0.55), (0.8, 0.75, 0.7), (0.9, 0.8, 0.6)]), np.float32)
    strength = rng.uniform(0.5, 1.0) if kind == "lined" else rng.uniform(0.35, 0.8)
    cov = lines.astype(np.float32)[:, :, None] * (strength / 255)
    paper *= 1 - cov * (1 - colour)
    if kind == "lined" and rng.random() < 0.7:  # the red margin line
        margin = np.zeros((h, w), np.uint8)
        x = int(rng.uniform(0.05, 0.25) * w)
        cv2.line(margin, (x, 0), (x, h - 1), 255, int(rng.integers(1, 3)), cv2.LINE_AA)
        cov = margin.astype(np.float32)[:, :, None] * (rng.uniform(0.5, 0.9) / 255)
        paper *= 1 - cov * (1 - np.array((0.6, 0.55, 0.95), np.float32))
    return paper, (y0, spacing) if kind == "lined" else None


# -------------------------------------------------------------------------------- light, camera


def _light(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """HxW float32 illumination: lamp gradient x vignette, with a soft hand shadow sometimes."""
    h, w = size
    light = lamp(rng, size, tilt=(0.1, 0.45), offset=0.3, vignette=(0.1, 0.4))
    light *= np.float32(rng.uniform(150, 250))
    if rng.random() < 0.35:  # a hand or arm between the lamp and the page
        side = int(rng.integers(4))
        edge = [(rng.uniform(0, w), h + 40), (w + 40, rng.uniform(0, h)),
                (rng.uniform(0, w), -40), (-40, rng.uniform(0, h))][side]
        tip = (rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h)
        arm, hand = rng.uniform(0.15, 0.35) * h, rng.uniform(0.08, 0.18) * h

        def draw(c, s):
            cv2.line(c, (int(edge[0] * s), int(edge[1] * s)), (int(tip[0] * s), int(tip[1] * s)), 1.0,
                     max(1, int(arm * s)))
            cv2.circle(c, (int(tip[0] * s), int(tip[1] * s)), max(1, int(hand * s)), 1.0, -1)

        light *= 1 - float(rng.uniform(0.3, 0.6)) * _soft((h, w), draw, rng.uniform(12, 35))
    return light


def _camera(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Glare, tilt and perspective, blur, noise, JPEG -> (BGR uint8, the 3x3 warp applied)."""
    h, w = img.shape[:2]
    if rng.random() < 0.25:  # glare: a washed-out spot
        centre, radius = (rng.uniform(0, w), rng.uniform(0, h)), rng.uniform(0.05, 0.15) * h

        def draw(c, s):
            cv2.circle(c, (int(centre[0] * s), int(centre[1] * s)), max(1, int(radius * s)), 1.0, -1)

        g = _soft((h, w), draw, rng.uniform(15, 40))[:, :, None] * rng.uniform(0.3, 0.6)
        img = img + g * (255 - img)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-0.04, 0.04, (4, 2)) * (w, h)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-6, 6), 1.0)
    dst = (np.hstack([src, np.ones((4, 1), np.float32)]) @ rot.T + jitter).astype(np.float32)
    warp = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, warp, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.2:  # motion blur along a random direction
        k = np.zeros((7, 7), np.float32)
        length = int(rng.integers(3, 8))
        a = rng.uniform(0, np.pi)
        cv2.line(k, (3 - round(length / 2 * math.cos(a)), 3 - round(length / 2 * math.sin(a))),
                 (3 + round(length / 2 * math.cos(a)), 3 + round(length / 2 * math.sin(a))), 1.0, 1)
        img = cv2.filter2D(img, -1, k / k.sum())
    else:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.5))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(2, 8))
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 93))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out, warp


# -------------------------------------------------------------------------------------- scene


def make_scene(digits: list[np.ndarray], labels: list[int], rng: np.random.Generator,
               paper: str | None = None, ink: str | None = None,
               size: tuple[int, int] = (480, 640)) -> DeskScene:
    """Write `digits` (MNIST 28x28 uint8, 0-6 of them) in a row on a desk scene -> DeskScene."""
    if len(digits) != len(labels) or len(digits) > 6:
        raise ValueError("make_scene: 0 to 6 digits, one label each")
    h, w = size
    paper = paper or str(rng.choice(PAPERS))
    ink = (ink or str(rng.choice(INKS))) if digits else ""
    sheet, rule = _paper(rng, paper, size)
    boxes: list[tuple[int, int, int, int]] = []
    if digits:
        height = float(rng.uniform(35, 150))
        width, colour, opacity = _ink(ink, height, rng)
        sizes = rng.uniform(0.9, 1.1, len(digits))
        angles = rng.uniform(-12, 12, len(digits))
        touching = rng.random(len(digits) - 1) < 0.15
        gap_frac = np.where(touching, rng.uniform(-0.08, 0.02, len(touching)),
                            rng.uniform(0.1, 0.6, len(touching)))

        chosen = height

        def draw(height: float) -> list[np.ndarray]:  # the pen's width scales with the writing
            pen = max(1.2, width * height / chosen)
            return [pen_stroke(d, height * f, pen, a) for d, f, a in zip(digits, sizes, angles, strict=True)]

        strokes = draw(height)
        total = sum(s.shape[1] for s in strokes) + float(gap_frac.sum()) * height
        if total > 0.8 * w:  # too long a row for the frame: write smaller
            height *= 0.8 * w / total
            strokes = draw(height)
            total = sum(s.shape[1] for s in strokes) + float(gap_frac.sum()) * height
        tallest = max(s.shape[0] for s in strokes)
        # kept 8 % inside the frame: tilt and perspective must not push a digit out of view
        x = rng.uniform(0.08 * w, max(0.08 * w + 1, 0.92 * w - total))
        base = rng.uniform(0.12 * h + tallest, 0.88 * h)
        if rule:  # handwriting sits on a ruled line
            y0, spacing = rule
            base = y0 + spacing * max(1, round((base - y0) / spacing))
            base = min(max(base, tallest + 0.12 * h), 0.88 * h)
        cov = np.zeros((h, w), np.float32)
        owner = np.zeros((h, w), np.uint8)
        for k, s in enumerate(strokes):
            sh, sw = s.shape
            y = int(base - sh + rng.uniform(-0.08, 0.08) * height)
            y, xi = min(max(y, 2), h - sh - 2), min(max(int(x), 2), w - sw - 2)
            cov[y:y + sh, xi:xi + sw] = np.maximum(cov[y:y + sh, xi:xi + sw], s)
            owner[y:y + sh, xi:xi + sw][s >= 0.5] = k + 1
            x += sw + (gap_frac[k] * height if k < len(gap_frac) else 0)
        if ink == "ballpoint":
            cov *= _texture(rng, (h, w), 6.0, 0.75)
        elif ink == "pencil":
            cov *= _texture(rng, (h, w), 0.7, 0.35)
        cov *= opacity
        sheet = sheet * (1 - cov[:, :, None] * (1 - colour))
    cast = rng.uniform(0.88, 1.12, 3).astype(np.float32)
    img = sheet * _light(rng, size)[:, :, None] * cast
    image, warp = _camera(img, rng)
    truth = "".join(str(int(v)) for v in labels)
    if not digits:
        return DeskScene(image, truth, [], None, paper, ink)
    owner = cv2.warpPerspective(owner, warp, (w, h), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    for k in range(len(digits)):
        ys, xs = np.nonzero(owner == k + 1)
        boxes.append((int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
                     if len(xs) else (0, 0, 0, 0))
    return DeskScene(image, truth, boxes, owner, paper, ink)


def scene_set(images: np.ndarray, labels: np.ndarray, n: int, seed: int,
              papers: tuple[str, ...] = PAPERS, inks: tuple[str, ...] = INKS,
              size: tuple[int, int] = (480, 640)) -> list[DeskScene]:
    """n scenes (rows x cols `size`) from these MNIST images (pass the *test* split to evaluate,
    *train* to learn): paper and ink cycle evenly, 1-6 digits each, about BLANK_RATE of them blank."""
    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(n):
        k = 0 if rng.random() < BLANK_RATE else int(rng.integers(1, 7))
        idx = rng.integers(0, len(images), k)
        scenes.append(make_scene(list(images[idx]), [int(v) for v in labels[idx]], rng,
                                 paper=papers[i % len(papers)], ink=inks[(i // len(papers)) % len(inks)],
                                 size=size))
    return scenes
