"""Built-in ShapesWorld rewards (pixels and caption only; never the generator's metadata).

Importing this package registers: shapes_alignment, sharpness, cleanliness, colorfulness.
"""

from rewardflow.shapes.rewards.alignment import ShapesAlignment
from rewardflow.shapes.rewards.colorfulness import Colorfulness
from rewardflow.shapes.rewards.quality import Cleanliness, Sharpness

BUILTIN_REWARDS = ("shapes_alignment", "sharpness", "cleanliness", "colorfulness")

__all__ = ["BUILTIN_REWARDS", "Cleanliness", "Colorfulness", "ShapesAlignment", "Sharpness"]
