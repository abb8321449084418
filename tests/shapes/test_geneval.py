"""GenEval-style evaluator: near-perfect on clean scenes, rejects corrupted captions."""

import numpy as np
import pytest
from PIL import Image

from rewardflow.shapes import (
    CATEGORIES,
    SHAPES_PRESETS,
    build_prompt_set,
    corrupt_caption,
    generate_sample,
    load_shapes_prompts,
    make_spec,
    render_scene,
    scene_for_spec,
)
from rewardflow.shapes.geneval import evaluate, relative_position
from rewardflow.shapes.geneval_detector import detect_objects


def test_prompt_set_is_shipped_fixed_and_geneval_shaped():
    entries = load_shapes_prompts()
    assert entries == build_prompt_set()  # the asset matches its generating script
    for tag in CATEGORIES:
        assert sum(e["tag"] == tag for e in entries) >= 50
    for e in entries:
        assert set(e) <= {"tag", "include", "exclude", "prompt"} and e["prompt"].startswith("a photo of ")
    easy = load_shapes_prompts(max_count=2)
    assert easy and all(r["count"] <= 2 for e in easy for r in e["include"])
    with pytest.raises(ValueError, match="categories"):
        load_shapes_prompts(categories=["texture"])


@pytest.fixture(scope="module")
def clean_set():
    cfg = SHAPES_PRESETS["full"]
    entries = (load_shapes_prompts() * 2)[:600]
    images, corrupted = [], []
    for i, e in enumerate(entries):
        rng = np.random.default_rng(i)
        scene = scene_for_spec(e, rng, cfg)
        images.append(render_scene(scene, 32))
        corrupted.append(corrupt_caption(e, rng, cfg, objects=scene.objects)[0])
    return entries, images, corrupted


def test_clean_scenes_pass_their_own_prompt(clean_set):
    entries, images, _ = clean_set
    res = evaluate(images, entries)
    assert res.overall >= 0.99 and min(res.per_category.values()) >= 0.98
    assert res.overall == pytest.approx(np.mean(list(res.per_category.values())))
    assert sum(r["correct"] for r in res.per_image) / len(entries) >= 0.99


def test_corrupted_prompts_fail(clean_set):
    entries, images, corrupted = clean_set
    assert all(c["prompt"] != e["prompt"] for c, e in zip(corrupted, entries))
    res = evaluate(images, corrupted)
    assert sum(r["correct"] for r in res.per_image) / len(entries) <= 0.02


def test_tolerates_mild_degradation_and_light_texture():
    cfg = SHAPES_PRESETS["full"].replace(
        texture_prob=1.0,
        p_caption_corruption=0.0,
        p_off_frame=0.0,
        p_low_contrast=0.0,
        p_desaturate=0.0,
        p_blur=1.0,
        p_noise=1.0,
        max_level=1,
    )
    entries = load_shapes_prompts()[::3]
    images = [generate_sample(cfg, i, spec=e).image for i, e in enumerate(entries)]
    assert evaluate(images, entries).overall >= 0.95


def test_accepts_pil_and_torch_images():
    e = make_spec("colors", [{"class": "square", "count": 1, "color": "red"}])
    img = generate_sample(SHAPES_PRESETS["easy"], 0, spec=e, clean=True).image
    torch = pytest.importorskip("torch")
    tensor = torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1.0
    res = evaluate([Image.fromarray(img), tensor], [e, e])
    assert [r["correct"] for r in res.per_image] == [True, True]
    with pytest.raises(ValueError, match="prompt entries"):
        evaluate([img], [e, e])


def test_count_semantics_exact_and_geneval():
    cfg = SHAPES_PRESETS["full"].clean().replace(distractor_prob=0.0)
    three = make_spec("counting", [{"class": "circle", "count": 3}])
    img = generate_sample(cfg, 0, spec=three).image
    one = make_spec("single_object", [{"class": "circle", "count": 1}])
    two = make_spec("counting", [{"class": "circle", "count": 2}])
    assert [d.shape for d in detect_objects(img)] == ["circle"] * 3
    assert not evaluate([img], [one]).per_image[0]["correct"]
    assert evaluate([img], [one], exact_counts=False).per_image[0]["correct"]
    assert not evaluate([img], [two], exact_counts=False).per_image[0]["correct"]  # exclude: < 3


def test_relative_position_rule():
    from rewardflow.shapes.geneval_detector import Detection

    def box(x0, y0, x1, y1):
        return Detection("circle", "red", (x0, y0, x1, y1), (0, 0), 1.0, 0.8, 0.0)

    a, b = box(0, 10, 8, 18), box(20, 11, 28, 19)
    assert relative_position(a, b) == {"left of"} and relative_position(b, a) == {"right of"}
    assert relative_position(box(10, 0, 18, 8), box(10, 20, 18, 28)) == {"above"}
    assert relative_position(a, box(1, 10, 9, 18)) == set()  # nearly on top: no relation


def test_contrast_invariant_and_no_false_objects_on_empty_images():
    from rewardflow.shapes import Scene, add_noise, low_contrast

    cfg = SHAPES_PRESETS["full"]
    entries = load_shapes_prompts()[1::4]
    scenes = [scene_for_spec(e, np.random.default_rng(i), cfg) for i, e in enumerate(entries)]
    faded = [low_contrast(render_scene(s, 32), 4) for s in scenes]
    assert evaluate(faded, entries).overall >= 0.97
    empty = [Scene([], s.bg_rgb, s.texture_amplitude, s.texture_seed) for s in scenes[:40]]
    rng = np.random.default_rng(0)
    assert sum(len(detect_objects(add_noise(render_scene(s, 32), 3, rng))) for s in empty) == 0
