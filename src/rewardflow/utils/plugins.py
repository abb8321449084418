"""Objects named by "module:attribute" strings, imported when first needed.

The core names the built-in ShapesWorld (`rewardflow.shapes`) only this way: as the provider of
the built-in rewards, the "shapes" prompt set and the default training prompts. Nothing in the
core imports it, so the core works (and is tested) without it, and another world can take its
place by naming other objects.
"""

from __future__ import annotations

import importlib
from typing import Any

# The built-in benchmark world's entry points.
SHAPES_REWARDS = "rewardflow.shapes.rewards"
SHAPES_PROMPT_SET = "rewardflow.shapes.prompts:load_shapes_prompts"
SHAPES_TRAINING_PROMPTS = "rewardflow.shapes.prompts:training_prompts"


def load_object(spec: str) -> Any:
    """`module:attribute` -> the attribute (`module` alone -> the module)."""
    module, _, attr = spec.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod
