"""What a training prompt shows for each row: the context column, a template over chosen columns ("News posted at
{created_at}", as the paper's Upworthy prompt), or nothing but the instruction.

`prompt_texts` gives the per-row text that becomes the chat prompt's user message (see `models.PromptStyle`), and
`prompt_mode` says which of the three it is: "context" (the context column, placed in the editor's user template
and truncated there, as before), "template" (the rendered template is the whole user message; each value is
truncated to `max_words` here) or "constant" (the same message for every row, so generation samples varied texts
from one prompt: held-out prompts are then rows, not distinct contexts).
"""

from __future__ import annotations

import pandas as pd

from .roles import TEMPLATE_FIELD, Roles, template_fields

# The user message when the prompt shows no column: the system prompt (the editor's instruction) says the rest.
NO_CONTEXT_PROMPT = "Write a headline."


def prompt_mode(roles: Roles) -> str:
    """'template', 'context' or 'constant' (see the module docstring)."""
    if roles.prompt_template is not None:
        return "template" if template_fields(roles.prompt_template) else "constant"
    return "context" if roles.context else "constant"


def constant_prompt(roles: Roles) -> str:
    """The one user message of a table whose prompt shows no column."""
    return roles.prompt_template.strip() if roles.prompt_template else NO_CONTEXT_PROMPT


def _as_text(values: pd.Series, max_words: int | None) -> pd.Series:
    """Values as prompt text: dates without a time of day as YYYY-MM-DD, missing as '', long ones cut to
    `max_words` words."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values)
        midnight = (stamps.dropna() == stamps.dropna().dt.normalize()).all()
        text = stamps.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M")
    else:
        text = values.astype("string")
    text = text.fillna("").astype(str).str.split().str.join(" ")
    if max_words:
        text = text.str.split(" ").str[:max_words].str.join(" ")
    return text


def render_template(frame: pd.DataFrame, template: str, max_words: int | None = None) -> pd.Series:
    """The template with each {column} replaced by the row's value (values cut to `max_words` words)."""
    pieces: list[pd.Series | str] = []
    last = 0
    for match in TEMPLATE_FIELD.finditer(template):
        pieces.append(template[last:match.start()])
        pieces.append(_as_text(frame[match.group(1).strip()], max_words))
        last = match.end()
    pieces.append(template[last:])
    out = pd.Series("", index=frame.index, dtype=object)
    for piece in pieces:
        out = out + piece
    return out.astype(str)


def prompt_texts(frame: pd.DataFrame, roles: Roles, max_words: int | None = None) -> pd.Series:
    """The per-row text of the prompt's user message (see `prompt_mode`); the context mode leaves truncation to
    the prompt style, as it always did."""
    mode = prompt_mode(roles)
    if mode == "template":
        return render_template(frame, roles.prompt_template, max_words)
    if mode == "context":
        return frame[roles.context].astype(str)
    return pd.Series(constant_prompt(roles), index=frame.index, dtype=object)
