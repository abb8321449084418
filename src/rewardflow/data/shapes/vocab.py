"""The ShapesWorld vocabulary: shape classes, the colour palette, relations and number words.

Colours are spread over hue and lightness so that a nearest-colour rule separates them even
after mild blur or noise, and all of them stand far from the light neutral backgrounds.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

PLURALS: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles"}

# name -> sRGB. The first six form the default palette; the rest are opt-in extras whose
# distance to their neighbours is smaller (orange sits between red and yellow).
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "yellow": (240, 200, 20),
    "green": (40, 160, 60),
    "blue": (35, 90, 220),
    "purple": (140, 60, 190),
    "black": (25, 25, 25),
    "orange": (245, 130, 20),
    "pink": (240, 120, 190),
    "cyan": (20, 190, 205),
}

DEFAULT_COLORS: tuple[str, ...] = ("red", "yellow", "green", "blue", "purple", "black")

# GenEval's four relations; "above" means smaller y (image rows grow downward).
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
OPPOSITE: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}

# GenEval's six categories, in its own order and with its own tags.
CATEGORIES: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
