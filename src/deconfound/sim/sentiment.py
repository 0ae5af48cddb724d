"""The simulation's quality measure: VADER sentiment rescaled to [0, 1] (the paper's MIND set-up, App. D).

This is the *truth* of the simulated data only; real logs have no such column (see `evaluate.defaults`).
VADER ships its lexicon inside the `vadersentiment` wheel, so it works offline.
"""

from __future__ import annotations

import functools
import string

import numpy as np


@functools.lru_cache(maxsize=1)
def _vader():
    """The analyzer and the words VADER treats specially; every other word is inert to it."""
    import vaderSentiment.vaderSentiment as V
    analyzer = V.SentimentIntensityAnalyzer()
    # Words VADER compares by identity (negation, "but", "kind of", "at least", idioms, boosters).
    special = {"no", "least", "never", "without", "doubt", "but", "kind", "sort", "just", "enough",
               "so", "this", "nor", "very"}
    for phrase in V.SPECIAL_CASES:
        special |= set(phrase.split())
    # These only matter next to a partner word; kept only when the partner is in the text.
    conditional = {"the": {"shit", "bomb"}, "to": {"die"}, "for": {"die"},
                   "of": {"kind", "sort", "kiss", "death"}, "at": {"least"}, "or": {"no"}}
    special -= set(conditional)
    relevant = frozenset(analyzer.lexicon) | set(V.BOOSTER_DICT) | set(V.NEGATE) | special
    return analyzer, relevant, conditional


def _vader_key(text: str) -> str:
    """A shorter text with exactly the same VADER compound score, so scores can be cached.

    VADER scores a word from the lexicon and looks at most 3 words back and 2 ahead, comparing
    words by identity (negations, boosters, idioms) and by ALL CAPS; "!" and "?" count over the
    whole text. Every other word is inert, so each inert word becomes a placeholder and runs of
    more than 3 placeholders are cut to 3 (windows never reach past 3); the inert words' "!" and
    "?" move to the first placeholder. tests/test_simulate.py checks the equality on real texts.
    """
    if not text.isascii():  # emoji are rewritten by VADER itself; score those texts as they are
        return text
    tokens = text.split()
    kinds = [_KINDS[t] if t in _KINDS else _classify(t) for t in tokens]
    if _PARTNER in kinds:  # rare: decide which conditional words stay
        present = {_word(t) for t, k in zip(tokens, kinds) if k == _PARTNER}
        conditional = _vader()[2]
        kinds = [(_RELEVANT if conditional[_word(t)] & present else _INERT)
                 if k == _CONDITIONAL else k for t, k in zip(tokens, kinds)]
    out, run, first = [], 0, -1
    for token, kind in zip(tokens, kinds):
        if kind == _RELEVANT or kind == _PARTNER:
            out.append(token)
            run = 0
        else:  # inert, or conditional without its partner
            if run < 3:
                first = len(out) if first < 0 else first
                out.append("Qzx")
            run += 1
    kept = " ".join(out)
    marks = "!" * (text.count("!") - kept.count("!")) + "?" * (text.count("?") - kept.count("?"))
    if marks:  # only inert tokens lost marks, so there is a placeholder to carry them
        out[first] += marks
        return " ".join(out)
    return kept


_INERT, _RELEVANT, _CONDITIONAL, _PARTNER = range(4)
_KINDS: dict[str, int] = {}  # token -> kind; grows with the vocabulary seen


def _word(token: str) -> str:
    stripped = token.strip(string.punctuation)  # as VADER's SentiText does
    return (token if len(stripped) <= 2 else stripped).lower()


def _classify(token: str) -> int:
    """How _vader_key must treat a token (memoised in _KINDS)."""
    word = _word(token)
    _, relevant, conditional = _vader()
    if any(word in partners for partners in conditional.values()):
        kind = _PARTNER  # relevant in itself, and it switches a conditional word on
    elif token.isupper() or word in relevant or "n't" in word:  # ALL CAPS counts for emphasis
        kind = _RELEVANT
    elif word in conditional:
        kind = _CONDITIONAL
    else:
        kind = _INERT
    if len(_KINDS) < 500_000:  # bound the memo on endless streams of new tokens
        _KINDS[token] = kind
    return kind


@functools.lru_cache(maxsize=262_144)  # generated headlines repeat a lot during RL evaluation
def _compound(key: str) -> float:
    return _vader()[0].polarity_scores(key)["compound"]


def quality_scores(texts) -> np.ndarray:
    """Quality s(x) = (VADER compound + 1) / 2 in [0, 1] for each text; missing text scores 0.5."""
    if isinstance(texts, str):
        texts = [texts]
    compound = [_compound(_vader_key(t)) if isinstance(t, str) else 0.0 for t in texts]
    return (np.asarray(compound, dtype=float) + 1.0) / 2.0
