"""Keyword ranking on the gateway side, for backends with no full-text search of their own.

BM25 (k1 = 1.2, b = 0.75) over the candidate texts a backend hands over, with document
frequencies counted in that same candidate set, and reciprocal rank fusion (k = 60) to
merge a keyword ranking with a vector ranking.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_TERM = re.compile(r"\w+")
RRF_K = 60


def terms(text: str) -> list[str]:
    """The lower-cased word tokens of a text (no stemming, no stop words)."""
    return _TERM.findall(text.lower())


def bm25_scores(query: str, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """One BM25 score per text (0 when no query term occurs), statistics from `texts`."""
    wanted = set(terms(query))
    if not wanted or not texts:
        return [0.0] * len(texts)
    counted = [Counter(terms(text)) for text in texts]
    lengths = [sum(counts.values()) for counts in counted]
    average = (sum(lengths) / len(lengths)) or 1.0
    total = len(texts)
    frequency = {term: sum(1 for counts in counted if term in counts) for term in wanted}
    weight = {term: math.log(1 + (total - df + 0.5) / (df + 0.5)) for term, df in frequency.items()}
    scores = []
    for counts, length in zip(counted, lengths, strict=True):
        score = 0.0
        for term in wanted:
            tf = counts.get(term, 0)
            if tf:
                score += weight[term] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
        scores.append(score)
    return scores


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Fused score per id: the sum over rankings of 1 / (k + rank), ranks from 1."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused
