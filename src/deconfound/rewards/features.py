"""Frozen text features for the ridge and ODIN heads, and the cache that shares them between reward methods.

Backbones: "tfidf" (word 1–2-grams fitted on the training inputs; fast, for smoke runs and tests), "minilm"
(all-MiniLM-L6-v2 sentence embeddings from `causal.embed_texts`, the paper's Upworthy set-up of embeddings
+ an L2 head), "generator" (the frozen last-token hidden state of the generator, `models.load_generator`).
A featuriser fits (TF-IDF only), transforms input strings to a matrix, saves what it fitted into the reward
folder (tfidf.joblib) and loads back from it; the neural encoders are reloaded from their source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DeconfoundError
from .config import FROZEN_BACKBONES, RewardConfig


class TfidfFeatures:
    """Word 1–2-grams with sublinear TF-IDF, fitted on the training inputs (sparse, so the ridge head sees
    every word: a 128-d LSA reduction such as `causal.TfidfEmbedder` loses the word-level signal).
    Single-character tokens are kept so digits of a confounder written into the text stay visible."""

    name = "tfidf"

    def __init__(self, max_features: int = 50_000, vectorizer=None):
        self.max_features = max_features
        self.vectorizer = vectorizer

    def fit(self, inputs: list[str]) -> "TfidfFeatures":
        """Fit the vocabulary and idf weights on the training inputs."""
        from ..causal import fit_tfidf
        self.vectorizer, _ = fit_tfidf(inputs, max_features=self.max_features, single_char_tokens=True,
                                       purpose="learn a reward from")
        return self

    def transform(self, inputs: list[str]):
        """A sparse float64 row per input."""
        return self.vectorizer.transform(inputs).astype(np.float64).tocsr()

    def save(self, folder: Path) -> None:
        """tfidf.joblib: the fitted vectorizer."""
        import joblib
        joblib.dump(self.vectorizer, folder / "tfidf.joblib")

    @classmethod
    def load(cls, folder: Path, config: RewardConfig) -> "TfidfFeatures":
        """The vectorizer saved in folder."""
        import joblib
        return cls(config.tfidf_max_features, joblib.load(folder / "tfidf.joblib"))


class MemoFeatures:
    """A frozen encoder that embeds each distinct input once per process (shared across reward methods)."""

    name = "memo"

    def __init__(self):
        self.memo: dict[str, np.ndarray] = {}

    def fit(self, inputs: list[str]) -> "MemoFeatures":
        """Nothing to fit: the encoder is frozen."""
        return self

    max_memo = 100_000  # RL scores ever-new completions: bound the memory (≈150 MB of 384-d float32)

    def transform(self, inputs: list[str]) -> np.ndarray:
        """A dense float64 row per input, embedding only inputs not seen before."""
        todo = list(dict.fromkeys(t for t in inputs if t not in self.memo))
        if len(self.memo) + len(todo) > self.max_memo:
            self.memo.clear()
            todo = list(dict.fromkeys(inputs))
        if todo:
            self.memo.update(zip(todo, self._embed(todo)))
        return np.stack([self.memo[t] for t in inputs]).astype(np.float64) if inputs else np.zeros((0, 0))

    def save(self, folder: Path) -> None:  # nothing fitted: the encoder is reloaded from its source
        """Nothing to write."""
        return None


class MiniLMFeatures(MemoFeatures):
    """all-MiniLM-L6-v2 sentence embeddings."""

    name = "minilm"

    def __init__(self, batch_size: int = 64):
        super().__init__()
        self.batch_size = batch_size

    def _embed(self, inputs: list[str]) -> np.ndarray:
        from ..causal import embed_texts
        return embed_texts(inputs, model="minilm", batch_size=self.batch_size)

    @classmethod
    def load(cls, folder: Path, config: RewardConfig) -> "MiniLMFeatures":
        """The encoder with the config's batch size (nothing is read from folder)."""
        return cls(config.embed_batch_size)


class GeneratorFeatures(MemoFeatures):
    """The generator's final hidden state at the last real token of each input, frozen."""

    name = "generator"

    def __init__(self, model_path: str, batch_size: int = 32, max_length: int = 64):
        super().__init__()
        self.model_path, self.batch_size, self.max_length = model_path, batch_size, max_length
        self._model = None

    def _embed(self, inputs: list[str]) -> np.ndarray:
        import torch
        if self._model is None:
            from ..models import load_generator
            if not Path(self.model_path).exists():
                raise DeconfoundError(f"generator folder {self.model_path} is gone; retrain the reward model")
            self._model, self._tokenizer = load_generator(self.model_path)
            self._model.eval()
            ensure_pad_token(self._tokenizer)
        device = next(self._model.parameters()).device
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.batch_size):
                batch = self._tokenizer(inputs[start:start + self.batch_size], padding=True, truncation=True,
                                        max_length=self.max_length, return_tensors="pt").to(device)
                hidden = self._model(**batch, output_hidden_states=True).hidden_states[-1]
                out.append(last_token(hidden, batch["attention_mask"]).float().cpu().numpy())
        return np.concatenate(out)

    @classmethod
    def load(cls, folder: Path, config: RewardConfig) -> "GeneratorFeatures":
        """The encoder of the config's generator folder (nothing is read from folder)."""
        return cls(config.model_path, config.embed_batch_size, config.max_length)


def ensure_pad_token(tokenizer) -> None:
    """Right padding and a pad token, as `last_token` expects."""
    tokenizer.padding_side = "right"  # last_token reads the position attention_mask.sum() - 1
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token


def last_token(hidden, attention_mask):
    """Hidden state of each row's last real token (right padding)."""
    import torch
    last = attention_mask.long().sum(1).clamp(min=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


_FEATURE_CLASSES = {"tfidf": TfidfFeatures, "minilm": MiniLMFeatures, "generator": GeneratorFeatures}


def load_features(folder: Path, config: RewardConfig):
    """The featuriser of a saved frozen-backbone reward model."""
    return _FEATURE_CLASSES[config.backbone].load(folder, config)


class FeatureCache:
    """Frozen-backbone features shared by the reward models of one run: the encoder is loaded once and each
    distinct input is embedded once (TF-IDF is fitted once per input format: plain text, text with the
    confounder written in, text with context)."""

    def __init__(self, backbone: str, model_path: str | None = None, batch_size: int = 64, max_length: int = 64,
                 tfidf_max_features: int = 50_000):
        if backbone not in FROZEN_BACKBONES:
            raise DeconfoundError(f"FeatureCache is for frozen backbones ({', '.join(FROZEN_BACKBONES)}), "
                                  f"not {backbone!r}")
        if backbone == "generator" and not model_path:
            raise DeconfoundError("the 'generator' reward backbone needs model_path (a language-model folder)")
        self.backbone, self.model_path = backbone, model_path
        self.batch_size, self.max_length, self.tfidf_max_features = batch_size, max_length, tfidf_max_features
        self._featurizers: dict[str, object] = {}

    @classmethod
    def for_config(cls, config: RewardConfig) -> "FeatureCache":
        """A cache matching a reward config's backbone settings."""
        return cls(config.backbone, config.model_path, config.embed_batch_size, config.max_length,
                   config.tfidf_max_features)

    def featurizer(self, input_format: str, train_inputs: list[str]):
        """The encoder for one input format, fitted on `train_inputs` the first time (TF-IDF only)."""
        key = input_format if self.backbone == "tfidf" else self.backbone
        if key not in self._featurizers:
            if self.backbone == "tfidf":
                self._featurizers[key] = TfidfFeatures(self.tfidf_max_features).fit(train_inputs)
            elif self.backbone == "minilm":
                self._featurizers[key] = MiniLMFeatures(self.batch_size)
            else:
                self._featurizers[key] = GeneratorFeatures(self.model_path, self.batch_size, self.max_length)
        return self._featurizers[key]
