"""ShapesWorld generator: config, scenes, captions, corruption, degradations."""

import numpy as np
import pytest

from rewardflow.shapes import (
    CATEGORIES,
    SHAPES_PRESETS,
    ShapesConfig,
    add_noise,
    apply_degradations,
    blur,
    corrupt_caption,
    desaturate,
    generate_sample,
    low_contrast,
    off_frame,
    render_scene,
    sample_scene,
    sample_seed,
    spec_holds,
)


def test_presets_and_config_validation():
    easy, full = SHAPES_PRESETS["easy"], SHAPES_PRESETS["full"]
    assert easy.max_objects == 2 and full.max_objects == 4
    assert len(full.colors) >= 6
    assert ShapesConfig.from_dict(full.to_dict()) == full
    assert ShapesConfig.from_preset("easy", size=64).size == 64
    with pytest.raises(ValueError, match="preset"):
        ShapesConfig.from_preset("hard")
    with pytest.raises(ValueError, match="colors"):
        ShapesConfig(colors=("red", "mauve"))
    with pytest.raises(ValueError, match="counts"):
        ShapesConfig(max_objects=2, counts=(2, 3))


@pytest.mark.parametrize("preset", ["easy", "full"])
def test_scenes_true_nonoverlapping_and_in_frame(preset):
    cfg = SHAPES_PRESETS[preset]
    rng = np.random.default_rng(0)
    n_objects = set()
    for i in range(300):
        scene = sample_scene(rng, cfg, CATEGORIES[i % 6])
        objs = scene.objects
        n_objects.add(len(objs))
        assert 1 <= len(objs) <= cfg.max_objects
        assert spec_holds(scene.spec, objs), scene.spec["prompt"]
        for o in objs:
            assert o.cx - o.r >= 0 and o.cx + o.r <= 1 and o.cy - o.r >= 0 and o.cy + o.r <= 1
        for a in range(len(objs)):
            for b in range(a):
                oa, ob = objs[a], objs[b]
                need = oa.r + ob.r + cfg.gap - 1e-9
                assert abs(oa.cx - ob.cx) >= need or abs(oa.cy - ob.cy) >= need
    assert n_objects == set(range(1, cfg.max_objects + 1))
    if preset == "easy":  # lone objects are big enough to learn fast: 7-10 px radius at 32x32
        lone = [sample_scene(rng, cfg, "colors").objects[0].r * 32 for _ in range(50)]
        assert min(lone) >= 7.0 and max(lone) <= 10.0


def test_captions_follow_geneval_templates():
    cfg = SHAPES_PRESETS["full"]
    rng = np.random.default_rng(1)
    seen = {c: sample_scene(rng, cfg, c).spec["prompt"] for c in CATEGORIES}
    assert seen["single_object"].startswith("a photo of a ") and len(seen["single_object"].split()) == 5
    assert " and a " in seen["two_object"]
    assert seen["counting"].split()[3] in {"two", "three", "four"} and seen["counting"].endswith("s")
    assert any(r in seen["position"] for r in ("left of", "right of", "above", "below"))
    spec = sample_scene(rng, cfg, "counting").spec
    assert spec["exclude"][0]["count"] == spec["include"][0]["count"] + 1


@pytest.mark.parametrize("kind", ["color", "count", "shape", "relation"])
def test_corruption_is_false_for_its_scene(kind):
    cfg = SHAPES_PRESETS["full"]
    rng = np.random.default_rng(2)
    applied = 0
    for i in range(120):
        scene = sample_scene(rng, cfg, CATEGORIES[i % 6])
        bad, used = corrupt_caption(scene.spec, rng, cfg, kind=kind, objects=scene.objects)
        if used is None:
            continue
        applied += 1
        assert used == kind and bad["prompt"] != scene.spec["prompt"]
        assert not spec_holds(bad, scene.objects)
    assert applied >= 15  # "relation" applies to position prompts only (1 in 6)


def test_generate_sample_deterministic_and_metadata():
    cfg = SHAPES_PRESETS["full"]
    a, b = generate_sample(cfg, 123), generate_sample(cfg, 123)
    assert a.image.dtype == np.uint8 and a.image.shape == (32, 32, 3)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption and a.meta == b.meta
    assert not np.array_equal(a.image, generate_sample(cfg, 124).image)
    assert sample_seed(0, 1) != sample_seed(1, 0)
    m = a.meta
    assert {"caption", "clean_caption", "spec", "objects", "background", "degradations"} <= set(m)
    assert set(m["degradations"]) == {"blur", "noise", "low_contrast", "desaturate", "off_frame", "caption_corruption"}
    clean = generate_sample(cfg, 123, clean=True)
    assert clean.caption == clean.meta["clean_caption"]
    assert all(not v for v in clean.meta["degradations"].values())


def test_quality_spectrum_is_sampled_independently():
    cfg = SHAPES_PRESETS["full"]
    metas = [generate_sample(cfg, i).meta for i in range(600)]
    deg = {k: np.array([bool(m["degradations"][k]) for m in metas]) for k in ("blur", "noise", "caption_corruption")}
    for k, p in (("blur", cfg.p_blur), ("noise", cfg.p_noise), ("caption_corruption", cfg.p_caption_corruption)):
        assert abs(deg[k].mean() - p) < 0.07
    both = (deg["blur"] & deg["noise"]).mean()
    assert abs(both - deg["blur"].mean() * deg["noise"].mean()) < 0.04
    levels = {m["degradations"]["blur"] for m in metas}
    assert levels == {0, 1, 2, 3, 4, 5}
    corrupted = [m for m in metas if m["degradations"]["caption_corruption"]]
    assert all(m["caption"] != m["clean_caption"] for m in corrupted)


def _clean(seed=5):
    return generate_sample(SHAPES_PRESETS["easy"], seed, clean=True).image


def _grad_energy(img):
    x = img.astype(np.float64)
    return float((np.diff(x, axis=0) ** 2).mean() + (np.diff(x, axis=1) ** 2).mean())


def test_degradations_are_pure_and_monotone():
    img = _clean()
    before = img.copy()
    assert np.array_equal(blur(img, 0), img) and np.array_equal(low_contrast(img, 0), img)
    sharp = [_grad_energy(blur(img, k)) for k in range(6)]
    assert all(a > b for a, b in zip(sharp, sharp[1:]))
    stds = [float(low_contrast(img, k).astype(float).std()) for k in range(6)]
    assert all(a > b for a, b in zip(stds, stds[1:]))
    sat = [float(np.ptp(desaturate(img, k).astype(float), axis=2).mean()) for k in range(6)]
    assert all(a > b for a, b in zip(sat, sat[1:]))
    resid = [float(np.abs(add_noise(img, k, np.random.default_rng(0)).astype(float) - img).mean()) for k in range(6)]
    assert resid[0] == 0 and all(a < b for a, b in zip(resid, resid[1:]))
    assert np.array_equal(img, before)  # inputs untouched
    out = apply_degradations(img, {"blur": 2, "noise": 1}, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == img.shape
    with pytest.raises(ValueError, match="unknown"):
        apply_degradations(img, {"jpeg": 2}, np.random.default_rng(0))


def test_off_frame_pushes_the_requested_fraction_out():
    scene = sample_scene(np.random.default_rng(3), SHAPES_PRESETS["easy"], "colors")
    for level in (1, 3, 5):
        moved = off_frame(scene, level, np.random.default_rng(0)).objects[0]
        lo, hi = min(moved.cx, moved.cy) - moved.r, max(moved.cx, moved.cy) + moved.r
        outside = max(0.0, -lo, hi - 1.0) / (2 * moved.r)
        assert outside == pytest.approx(0.12 * level, abs=1e-6)
    assert scene.objects[0].cx - scene.objects[0].r >= 0  # original scene unchanged


def test_render_draws_objects_in_their_colours():
    scene = sample_scene(np.random.default_rng(4), SHAPES_PRESETS["easy"], "colors")
    o = scene.objects[0]
    img = render_scene(scene, 64)
    assert img.shape == (64, 64, 3)
    centre = (
        img[int(o.cy * 64), int(o.cx * 64)]
        if o.shape != "triangle"
        else img[int((o.cy + o.r / 2) * 64), int(o.cx * 64)]
    )
    assert np.abs(centre.astype(int) - np.array(o.rgb)).max() <= 1
    assert np.abs(img[0, 0].astype(int) - np.array(scene.bg_rgb)).max() <= scene.texture_amplitude + 1
