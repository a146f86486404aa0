"""Reads a judge model's reply as a relevance score and/or a classification.

Models answer in many shapes even when asked for JSON, so the reader tries, in order:

1. a JSON object anywhere in the reply (inside ```json fences or surrounded by prose,
   also one level down, as in `{"result": {...}}`), with a score under `score`,
   `relevance_score`, `relevance`, `rating` or `similarity` and a label under
   `classification`, `label`, `verdict`, `judgement`, `category`, `decision` or
   `relevance`, a reason under `reason`, `reasoning`, `explanation`, `rationale`;
2. `key: value` text (YAML-ish lines, single-quoted dicts, truncated JSON);
3. a reply that starts with a number (`0.8`, `85%`, `4/5`);
4. label words in prose: correct / relevant, ambiguous / partially relevant, incorrect /
   irrelevant / not relevant (a negation such as "not relevant" wins over "relevant").

A score is taken as a fraction when in [0, 1], out of 10 when in (1, 10], a percentage
when in (10, 100]; `a/b` is a fraction of `b`. Anything else is no score. A reply in
which none of this is found is unparsable (None); the caller grades it ambiguous.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway_core.crag.models import Classification

MAX_REPLY_CHARS = 20_000  # a judgement is short: never scan megabytes of a runaway reply
MAX_REASON_CHARS = 500

SCORE_KEYS = ("score", "relevance_score", "relevancy_score", "relevance", "rating", "similarity")
LABEL_KEYS = (
    "classification",
    "label",
    "verdict",
    "judgement",
    "judgment",
    "category",
    "decision",
    "grade",
    "relevance",
)
REASON_KEYS = ("reason", "reasoning", "explanation", "rationale", "justification")
RELEVANT_FLAG_KEYS = ("relevant", "is_relevant")

# Label words as a whole value (a JSON string, a `label: ...` line, a one-word reply).
VALUE_LABELS: dict[str, Classification] = {
    **dict.fromkeys(
        ("correct", "relevant", "highly relevant", "very relevant", "yes", "high", "useful"),
        "correct",
    ),
    **dict.fromkeys(
        (
            "ambiguous",
            "partially relevant",
            "partially correct",
            "somewhat relevant",
            "partial",
            "medium",
            "unclear",
            "uncertain",
            "maybe",
        ),
        "ambiguous",
    ),
    **dict.fromkeys(
        (
            "incorrect",
            "irrelevant",
            "not relevant",
            "not correct",
            "unrelated",
            "no",
            "low",
            "none",
            "off-topic",
        ),
        "incorrect",
    ),
}

_THINKING = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_FENCED = re.compile(r"```[ \t]*(?:json|JSON|javascript)?[ \t]*\n?(.*?)```", re.DOTALL)
_NUMBER = r"(-?\d+(?:\.\d+)?|-?\.\d+)"
_SCALE = r"\s*(%|/\s*\d+(?:\.\d+)?)?"
_KEYED_SCORE = re.compile(
    r"[\"']?\b(?:" + "|".join(SCORE_KEYS) + r")\b[\"']?\s*[:=]\s*[\"']?" + _NUMBER + _SCALE,
    re.IGNORECASE,
)
_KEYED_LABEL = re.compile(
    r"[\"']?\b(?:" + "|".join(LABEL_KEYS) + r")\b[\"']?\s*[:=]\s*[\"']?([A-Za-z][A-Za-z \-]*)",
    re.IGNORECASE,
)
_LEADING_NUMBER = re.compile(r"\A\s*\**\s*" + _NUMBER + _SCALE + r"(?![\w.])")
# Leftmost match wins; at one position the alternatives are tried in this order.
_PROSE_LABEL = re.compile(
    r"(?P<negated>(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?(?:relevant|correct)\b)"
    r"|(?P<partial>\b(?:partially|partly|somewhat|marginally)\s+(?:relevant|correct)\b)"
    r"|(?P<incorrect>\b(?:irrelevant|incorrect|unrelated|off-topic)\b)"
    r"|(?P<ambiguous>\bambiguous\b)"
    r"|(?P<correct>\b(?:relevant|correct)\b)",
    re.IGNORECASE,
)
_PROSE_GROUPS: dict[str, Classification] = {
    "negated": "incorrect",
    "partial": "ambiguous",
    "incorrect": "incorrect",
    "ambiguous": "ambiguous",
    "correct": "correct",
}


@dataclass(frozen=True)
class Judgement:
    """What a reply said: a score in [0, 1], a classification, or both; and why."""

    score: float | None
    classification: Classification | None
    reason: str | None = None


def parse_judgement(reply: str) -> Judgement | None:
    """The judgement in `reply`, or None when it holds neither a score nor a label."""
    # A reasoning model's thinking mentions every label before it decides: read the answer.
    text = _THINKING.sub("", reply[:MAX_REPLY_CHARS]).strip()
    if not text:
        return None
    for candidate in _json_objects(text):
        found = _from_mapping(candidate)
        if found is not None:
            return found
    score = _keyed_score(text)
    if score is None:
        score = _leading_score(text)
    label = _keyed_label(text) or _label_value(text) or _prose_label(text)
    if score is None and label is None:
        return None
    return Judgement(score=score, classification=label, reason=_shortened(text))


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object in the text: fenced blocks first, then from each `{`."""
    for block in _FENCED.findall(text):
        try:
            value = json.loads(block.strip())
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value
    decoder = json.JSONDecoder()
    for brace in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, brace.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def _from_mapping(mapping: Mapping[str, Any], depth: int = 0) -> Judgement | None:
    """The judgement in one JSON object (or in an object one level inside it)."""
    fields = {str(key).strip().lower(): value for key, value in mapping.items()}
    score = next(
        (s for key in SCORE_KEYS if (s := _score_value(fields.get(key))) is not None), None
    )
    label = next(
        (c for key in LABEL_KEYS if (c := _label_value(fields.get(key))) is not None), None
    )
    if label is None:
        flag = next((fields[key] for key in RELEVANT_FLAG_KEYS if key in fields), None)
        if isinstance(flag, bool):
            label = "correct" if flag else "incorrect"
    if score is None and label is None:
        if depth == 0:
            for value in fields.values():
                if isinstance(value, dict) and (found := _from_mapping(value, 1)) is not None:
                    return found
        return None
    reason = next((fields[key] for key in REASON_KEYS if isinstance(fields.get(key), str)), None)
    return Judgement(score=score, classification=label, reason=_shortened(reason))


def _normalized(number: float, scale: str | None) -> float | None:
    """A score read as a fraction, out of 10, a percentage, or out of `/b`."""
    if number < 0:
        return None
    if scale and scale.startswith("/"):
        whole = float(scale[1:].strip())
        return number / whole if whole > 0 and number <= whole else None
    if scale == "%":
        return number / 100 if number <= 100 else None
    if number <= 1:
        return number
    if number <= 10:
        return number / 10
    if number <= 100:
        return number / 100
    return None


def _score_value(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _normalized(float(value), None)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*" + _NUMBER + _SCALE + r"\s*", value)
        if match:
            return _normalized(float(match.group(1)), match.group(2))
    return None


def _label_value(value: Any) -> Classification | None:
    if not isinstance(value, str):
        return None
    words = " ".join(re.sub(r"[^a-z\- ]", " ", value.lower()).split())
    return VALUE_LABELS.get(words)


def _keyed_score(text: str) -> float | None:
    for match in _KEYED_SCORE.finditer(text):
        score = _normalized(float(match.group(1)), match.group(2))
        if score is not None:
            return score
    return None


def _keyed_label(text: str) -> Classification | None:
    for match in _KEYED_LABEL.finditer(text):
        words = match.group(1).strip()
        label = _label_value(words) or _prose_label(words)
        if label is not None:
            return label
    return None


def _leading_score(text: str) -> float | None:
    match = _LEADING_NUMBER.match(text)
    return _normalized(float(match.group(1)), match.group(2)) if match else None


def _prose_label(text: str) -> Classification | None:
    match = _PROSE_LABEL.search(text)
    if match is None or match.lastgroup is None:
        return None
    return _PROSE_GROUPS[match.lastgroup]


def _shortened(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    text = text.strip()
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"
