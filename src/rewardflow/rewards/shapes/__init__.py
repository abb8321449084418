"""Built-in ShapesWorld rewards (pixels and caption only; never the generator's metadata).

Importing this package registers: shapes_alignment, sharpness, cleanliness, colorfulness.
"""

from rewardflow.rewards.shapes.alignment import ShapesAlignment
from rewardflow.rewards.shapes.colorfulness import Colorfulness
from rewardflow.rewards.shapes.quality import Cleanliness, Sharpness

BUILTIN_REWARDS = ("shapes_alignment", "sharpness", "cleanliness", "colorfulness")

__all__ = ["BUILTIN_REWARDS", "Cleanliness", "Colorfulness", "ShapesAlignment", "Sharpness"]
