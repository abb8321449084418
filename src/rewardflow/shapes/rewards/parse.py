"""Caption parser for the alignment reward: GenEval-style caption -> list of checkable claims.

Understood grammar (case and extra spaces ignored, optional leading "a photo of"/"an image of",
optional trailing period):
    caption  := phrase (" and " phrase)*            single object, two objects, counting,
                                                    colours, colour attribution
              | phrase RELATION phrase              position
    phrase   := DET [COLOUR] SHAPE                  DET in a/an/one..six or a digit; the noun is
                                                    plural iff the number is > 1
    RELATION := "left of" | "right of" | "above" | "below" (also "to the left of", ...)
Anything else raises `CaptionParseError`; the reward then applies its documented policy.
This is the training reward's own parser; the evaluator (shapes/geneval.py) has another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rewardflow.shapes.vocab import PALETTE, SHAPES

NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
PLURAL = {s + "s": s for s in SHAPES}
_RELATIONS = {
    "left of": "left of",
    "to the left of": "left of",
    "right of": "right of",
    "to the right of": "right of",
    "above": "above",
    "below": "below",
}
_PREFIX = re.compile(r"^(?:a photo of|a picture of|an image of|a drawing of)\s+")
_REL_RE = re.compile(r"\s+(" + "|".join(sorted(map(re.escape, _RELATIONS), key=len, reverse=True)) + r")\s+")


class CaptionParseError(ValueError):
    pass


@dataclass(frozen=True)
class Phrase:
    shape: str
    count: int
    color: str | None = None


@dataclass(frozen=True)
class Claim:
    """One checkable statement: kind in {"count", "color", "relation"}."""

    kind: str
    phrase: int  # index of the phrase it is about
    relation: str | None = None
    other: int | None = None  # reference phrase of a relation


@dataclass(frozen=True)
class ParsedCaption:
    phrases: tuple[Phrase, ...]
    claims: tuple[Claim, ...]


def _phrase(text: str) -> Phrase:
    words = text.split()
    if len(words) not in (2, 3):
        raise CaptionParseError(f"cannot read object phrase {text!r}")
    det, noun = words[0], words[-1]
    if det.isdigit():
        n = int(det)
    elif det in NUMBERS:
        n = NUMBERS[det]
    else:
        raise CaptionParseError(f"unknown number word {det!r} in {text!r}")
    if n < 1:
        raise CaptionParseError(f"count must be >= 1 in {text!r}")
    if noun in SHAPES:
        plural = False
        shape = noun
    elif noun in PLURAL:
        plural = True
        shape = PLURAL[noun]
    else:
        raise CaptionParseError(f"unknown shape {noun!r} in {text!r}")
    if plural != (n > 1):
        raise CaptionParseError(f"number and noun disagree in {text!r}")
    color = None
    if len(words) == 3:
        color = words[1]
        if color not in PALETTE:
            raise CaptionParseError(f"unknown colour {color!r} in {text!r}")
    return Phrase(shape, n, color)


def parse_caption(caption: str) -> ParsedCaption:
    """Parse a caption into phrases and claims; `CaptionParseError` when outside the grammar."""
    text = " ".join(caption.lower().strip().rstrip(".").split())
    text = _PREFIX.sub("", text)
    if not text:
        raise CaptionParseError("empty caption")
    rel = _REL_RE.split(text)
    if len(rel) == 3:
        subj, ref = _phrase(rel[0]), _phrase(rel[2])
        phrases = (subj, ref)
        relation = _RELATIONS[rel[1]]
    elif len(rel) == 1:
        phrases = tuple(_phrase(p) for p in text.split(" and "))
        relation = None
    else:
        raise CaptionParseError(f"more than one relation in {caption!r}")
    seen = [p.shape for p in phrases]
    if len(set(seen)) != len(seen):
        # Two phrases about one class ("a red circle and a blue circle") have no unique reading
        # under the exact-count rule; ShapesWorld never writes them.
        raise CaptionParseError(f"shape named twice in {caption!r}")
    claims = []
    for i, p in enumerate(phrases):
        claims.append(Claim("count", i))
        if p.color:
            claims.append(Claim("color", i))
    if relation is not None:
        claims.append(Claim("relation", 0, relation=relation, other=1))
    return ParsedCaption(phrases, tuple(claims))
