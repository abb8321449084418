"""ShapesWorld: a procedural image-caption world with GenEval-style captions and a quality spectrum."""

from rewardflow.shapes.captions import (
    CORRUPTION_KINDS,
    caption_from_spec,
    corrupt_caption,
    make_spec,
    sample_spec,
    spec_holds,
)
from rewardflow.shapes.config import SHAPES_PRESETS, ShapesConfig
from rewardflow.shapes.degrade import (
    add_noise,
    apply_degradations,
    blur,
    desaturate,
    low_contrast,
    off_frame,
)
from rewardflow.shapes.generate import (
    ShapesSample,
    encode_png,
    generate_dataset,
    generate_sample,
    sample_seed,
)
from rewardflow.shapes.render import render_scene
from rewardflow.shapes.scene import Scene, ShapeObject, sample_scene, scene_for_spec
from rewardflow.shapes.vocab import CATEGORIES, PALETTE, RELATIONS, SHAPES

__all__ = [
    "CATEGORIES",
    "CORRUPTION_KINDS",
    "sample_spec",
    "PALETTE",
    "RELATIONS",
    "SHAPES",
    "SHAPES_PRESETS",
    "Scene",
    "ShapeObject",
    "ShapesConfig",
    "ShapesSample",
    "add_noise",
    "apply_degradations",
    "blur",
    "caption_from_spec",
    "corrupt_caption",
    "desaturate",
    "encode_png",
    "generate_dataset",
    "generate_sample",
    "low_contrast",
    "make_spec",
    "off_frame",
    "render_scene",
    "sample_scene",
    "sample_seed",
    "scene_for_spec",
    "spec_holds",
]

from rewardflow.shapes.prompts import build_prompt_set, load_shapes_prompts  # noqa: E402

__all__ += ["build_prompt_set", "load_shapes_prompts"]
