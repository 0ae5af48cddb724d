"""Measures of a generated text, defined once: the RL guard, the reward callable and the Compare page
all read a text the same way.

- `tokens`: lower-cased words (letters, digits, inner apostrophes), the unit of every count here.
- `repetition_rate`: the share of a text's words that repeat an earlier word of it.
- `completion_text`: the plain text of a trl completion (a string, or a conversation whose assistant
  messages hold the text).
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

_WORD_RE = re.compile(r"\w+(?:'\w+)?")


def tokens(text) -> list[str]:
    """Lower-cased words of a text (letters, digits, inner apostrophes); [] for anything not a string."""
    return _WORD_RE.findall(text.lower()) if isinstance(text, str) else []


def repetition_rate(text_or_words: str | Sequence[str]) -> float:
    """Share of words that repeat an earlier word of the same text (0 for no repeats or no words).
    Takes a text (split with `tokens`) or its word list."""
    words = tokens(text_or_words) if isinstance(text_or_words, str) else list(text_or_words)
    return 1.0 - len(set(words)) / len(words) if words else 0.0


def ngrams(words: Sequence[str], n: int) -> list[tuple]:
    """The n-grams of a word list, in order."""
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct_n(token_lists: Sequence[Sequence[str]], n: int) -> float:
    """Distinct-n over a set of texts: unique n-grams / all n-grams (NaN when there are none)."""
    grams = [g for words in token_lists for g in ngrams(words, n)]
    return len(set(grams)) / len(grams) if grams else math.nan


def completion_text(completion) -> str:
    """Plain text of a trl completion: a string, one message, or a conversation (the assistant's messages;
    a message without a role counts as the assistant's)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence):
        return "".join(completion_text(message) for message in completion
                       if not isinstance(message, Mapping) or message.get("role", "assistant") == "assistant")
    return str(completion)
