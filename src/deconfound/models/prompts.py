"""How a context becomes a chat prompt: the paper's editor prompt (App. D), the prompt style saved beside
every model folder, and the chat templates given to tokenizers that lack one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# The paper's editor prompt (App. D).
EDITOR_SYSTEM_PROMPT = (
    "You are an editor of a news website. Your task is to generate a headline for each news article "
    "that will attract the most readers. The headline should be less than 30 words. Only respond with "
    "the headline."
)
EDITOR_USER_TEMPLATE = "The news abstract is '{context}'"
# The user message is the prompt text itself: a rendered template over table columns, or the one instruction of a
# table without a context (`data.prompt_texts`).
WHOLE_MESSAGE_TEMPLATE = "{context}"
# A shorter system text for tiny models (the smoke preset): same role, a third of the tokens.
SHORT_EDITOR_PROMPT = "You are an editor of a news website. Only respond with the headline."

PROMPT_FILE = "deconfound_prompt.json"
# ChatML, as SmolLM2 uses it; given to tiny tokenizers and to tokenizers that come without a template.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# For tokenizers without ChatML tokens: the paper's plain "System:/User:/Assistant:" layout.
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize + ': ' + message['content'] + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
)
@dataclass
class PromptStyle:
    """How a context becomes a chat prompt: the system text, the user template, context truncation."""

    system_prompt: str = field(default=EDITOR_SYSTEM_PROMPT, metadata={
        "help": "system message (the paper's news-editor prompt by default; change it for non-news data)"})
    user_template: str = field(default=EDITOR_USER_TEMPLATE, metadata={
        "help": "user message; '{context}' is replaced by the row's context"})
    max_context_words: int | None = field(default=None, metadata={
        "help": "keep only the first N words of the context (short sequences for tiny models); None keeps all"})

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, folder: Path) -> None:
        """Write the style next to a model so later stages prompt it the same way."""
        (Path(folder) / PROMPT_FILE).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, folder) -> "PromptStyle":
        """The style saved in a model folder, or the paper's editor prompt when the folder has none."""
        path = Path(folder) / PROMPT_FILE
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_overrides(self, system_prompt: str | None = None, max_context_words: int | None = None,
                       user_template: str | None = None) -> "PromptStyle":
        """A copy with the given fields replaced (None keeps the current value; max_context_words 0 keeps every
        word)."""
        return PromptStyle(system_prompt=self.system_prompt if system_prompt is None else system_prompt,
                           user_template=self.user_template if user_template is None else user_template,
                           max_context_words=(self.max_context_words if max_context_words is None
                                              else max_context_words))


def truncate_words(text: str, max_words: int | None) -> str:
    """The first `max_words` words of `text` (all of it when None)."""
    text = " ".join(str(text).split())
    if not max_words:
        return text
    words = text.split(" ")
    return text if len(words) <= max_words else " ".join(words[:max_words])


def build_messages(context: str, style: PromptStyle | None = None) -> list[dict]:
    """The chat messages (system + user) for one context, as trl's conversational datasets expect."""
    style = style or PromptStyle()
    user = style.user_template.replace("{context}", truncate_words(context, style.max_context_words))
    messages = [{"role": "user", "content": user}]
    if style.system_prompt:
        messages.insert(0, {"role": "system", "content": style.system_prompt})
    return messages


def ensure_chat_template(tokenizer) -> None:
    """Give a tokenizer without a chat template one (ChatML when it knows the tokens, else plain)."""
    if getattr(tokenizer, "chat_template", None):
        return
    vocab = tokenizer.get_vocab()
    tokenizer.chat_template = CHATML_TEMPLATE if "<|im_start|>" in vocab else PLAIN_TEMPLATE


def format_prompt(tokenizer, context: str, style: PromptStyle | None = None) -> str:
    """The prompt text for one context: chat template + the editor prompt (App. D), ready to generate."""
    ensure_chat_template(tokenizer)
    return tokenizer.apply_chat_template(build_messages(context, style), tokenize=False,
                                         add_generation_prompt=True)
