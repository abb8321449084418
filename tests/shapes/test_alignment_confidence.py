"""The alignment reward scores each claim by the detector's confidence: analytic checks of the
three margins, and the reward's resolution on generated scenes."""

import math

import numpy as np
import pytest

from rewardflow.rewards import get_reward
from rewardflow.shapes import ShapesConfig, blur, generate_sample
from rewardflow.shapes.rewards.alignment import colour_confidence, relation_margin
from rewardflow.shapes.rewards.detector import PALETTE_HUES, Detection, classify_shape_conf


def _det(cx, cy, size=10.0, shape="circle", color="red", hue=None):
    return Detection(shape, color, cx, cy, size, size, int(size * size), 1.0, hue)


def test_relation_margin_is_one_when_clear_zero_when_false_and_between_when_level():
    ref = _det(50, 50)
    assert relation_margin(_det(20, 50), ref, "left of") == 1.0
    assert relation_margin(_det(80, 50), ref, "left of") == 0.0
    assert relation_margin(_det(80, 50), ref, "right of") == 1.0
    assert relation_margin(_det(50, 20), ref, "above") == 1.0
    assert relation_margin(_det(50, 20), ref, "below") == 0.0
    # 12 px left, 8 px up, objects 10 px: (12 - 8) / 10.
    assert relation_margin(_det(38, 42), ref, "left of") == pytest.approx(0.4)
    # Diagonal: as much across as along, no evidence for the relation.
    assert relation_margin(_det(30, 30), ref, "left of") == 0.0


def test_colour_confidence_falls_with_hue_distance_and_is_zero_for_another_colour():
    red = PALETTE_HUES["red"]
    assert colour_confidence(_det(0, 0, hue=red), "red") == pytest.approx(1.0)
    assert colour_confidence(_det(0, 0, hue=red + math.radians(15)), "red") == pytest.approx(0.75)
    assert colour_confidence(_det(0, 0, hue=red), "blue") == 0.0  # detected as red
    assert colour_confidence(_det(0, 0, hue=None), "red") == 0.0  # achromatic


def _superellipse(n: int, power: float) -> np.ndarray:
    # |x|^p + |y|^p <= 1: p = 2 is a disc, large p a square, in between a rounded square.
    y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    return np.abs(x) ** power + np.abs(y) ** power <= 1.0


def test_shape_confidence_is_one_on_clean_masks_and_falls_toward_the_boundary():
    assert classify_shape_conf(_superellipse(31, 2.0)) == ("circle", 1.0)
    assert classify_shape_conf(np.ones((31, 31), dtype=bool)) == ("square", 1.0)
    tri = np.array([[abs(c - 15) <= r / 2 for c in range(31)] for r in range(31)])
    assert classify_shape_conf(tri) == ("triangle", 1.0)
    # Superellipses morph the disc (p = 2) into the square (p -> inf): confidence falls toward
    # the circle/square boundary (near p = 6) from either side and stays in [0, 1].
    shape, conf = zip(*(classify_shape_conf(_superellipse(31, p)) for p in (2.0, 3.5, 5.0, 8.0, 12.0)))
    assert shape == ("circle",) * 3 + ("square",) * 2
    assert conf[0] > conf[1] > conf[2] and conf[2] < conf[3] < conf[4] < 1.0
    assert all(0.0 <= c <= 1.0 for c in conf)


def test_alignment_takes_many_values_and_falls_with_ambiguity():
    cfg = ShapesConfig().clean()
    samples = [generate_sample(cfg, 20_000 + i) for i in range(96)]
    imgs = np.stack([s.image for s in samples])
    caps = [s.caption for s in samples]
    r = get_reward("shapes_alignment")
    clean = r.score(imgs, caps).numpy()
    blurred = r.score(np.stack([blur(im, 3.0) for im in imgs]), caps).numpy()
    # The old fraction-of-claims reward took at most 7 values; confidences resolve far more.
    both = np.concatenate([clean, blurred])
    assert len(np.unique(np.round(both, 3))) >= 30
    assert ((both > 0) & (both < 1)).mean() >= 0.3
    # Blur makes shapes ambiguous: the same correct captions score lower on average.
    assert blurred.mean() < clean.mean() - 0.05
    assert clean.mean() > 0.9
