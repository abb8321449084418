"""The ShapesWorld vocabulary: shape classes, the colour palette, relations and number words.

Colours are spread over hue and lightness so that a nearest-colour rule separates them even
after mild blur or noise, and all of them stand far from the light neutral backgrounds.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

PLURALS: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles"}

# name -> sRGB. The default palette is six chromatic colours spread over hue, so that a
# saturation reward can treat every caption colour alike (black has no hue and desaturation
# cannot change it: it would always look fully saturated). Black, orange and pink are opt-in
# extras: black is achromatic, orange and pink sit close to red in hue.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "yellow": (240, 200, 20),
    "green": (40, 160, 60),
    "blue": (35, 90, 220),
    "purple": (140, 60, 190),
    "cyan": (20, 190, 205),
    "black": (25, 25, 25),
    "orange": (245, 130, 20),
    "pink": (240, 120, 190),
}

DEFAULT_COLORS: tuple[str, ...] = ("red", "yellow", "green", "blue", "purple", "cyan")

# GenEval's four relations; "above" means smaller y (image rows grow downward).
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
OPPOSITE: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}

# GenEval's six categories, in its own order and with its own tags.
CATEGORIES: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
