"""The NumPy sentence encoder gives the reference implementation's vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from knowledge.semantic import Encoder, ModelError, encoder_for, installed_model
from knowledge.semantic import encoder as encoder_module

SENTENCES = [
    "Cannot log in to the database after changing the password",
    "Password authentication failed for user on the primary cluster",
    "The office printer has run out of paper",
    "Disk full on /var/lib/postgresql: no space left on device",
]
# sentence-transformers 6.2.0 (PyTorch 2.13.0, CPU) on the pinned all-MiniLM-L6-v2:
# the first six dimensions of each vector, and every pair's cosine.
REFERENCE_HEADS = np.array([
    [0.048881, -0.033446, -0.065937, -0.040486, -0.040478, 0.024966],
    [0.012072, 0.018589, -0.029243, -0.022648, -0.032173, 0.015721],
    [-0.054049, 0.100517, -0.005856, 0.029057, 0.005121, -0.062244],
    [0.018078, -0.037859, 0.003264, 0.003291, 0.015469, -0.054055],
])  # fmt: skip
REFERENCE_COSINES = np.array([
    [1.0, 0.51835, 0.04539, 0.07655],
    [0.51835, 1.0, -0.01902, 0.00354],
    [0.04539, -0.01902, 1.0, 0.11588],
    [0.07655, 0.00354, 0.11588, 1.0],
])  # fmt: skip


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return encoder_for(None)


def test_vectors_match_the_reference_implementation(encoder: Encoder) -> None:
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(vectors[:, :6], REFERENCE_HEADS, atol=2e-6)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE_COSINES, atol=2e-5)


def test_titles_that_share_no_word_but_name_the_same_trouble_are_close(encoder: Encoder) -> None:
    login, auth, printer, _ = encoder.encode(SENTENCES)
    assert login @ auth > 0.5 > 10 * (login @ printer)


def test_a_text_gets_the_same_vector_alone_as_among_many_of_other_lengths() -> None:
    """Texts are sorted by length, padded to the longest of each batch of 32 and put back
    in order: neither the padding nor the sorting may reach a text's vector."""
    model = installed_model()
    assert model is not None
    texts = [f"Disk {n} full on host {n % 5}" + " and again" * (n % 9) for n in range(45)]
    together = Encoder(model).encode(texts)  # fresh encoders: nothing kept from other tests
    alone = Encoder(model)
    for text, vector in zip(texts, together, strict=True):
        np.testing.assert_allclose(vector, alone.encode([text])[0], atol=1e-5)


def test_a_text_without_words_has_no_direction(encoder: Encoder) -> None:
    vectors = encoder.encode(["", "   \n", "Disk full"])
    assert not vectors[:2].any()
    assert np.linalg.norm(vectors[2]) == pytest.approx(1.0, abs=1e-5)


def test_an_oversized_or_hostile_text_is_cut_not_refused(encoder: Encoder) -> None:
    texts = ["word " * 20_000, "\x00\x1b[31m<script>alert(1)</script>", "ß" * 5_000 + " 表情"]
    vectors = encoder.encode(texts)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)


def test_a_missing_or_damaged_model_is_refused_with_its_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=str(tmp_path)):
        Encoder(tmp_path)
    model = installed_model()
    assert model is not None
    damaged = tmp_path / "damaged"
    shutil.copytree(model, damaged, ignore=shutil.ignore_patterns("model.safetensors"))
    (damaged / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelError, match="cannot load"):
        Encoder(damaged)
    config = json.loads((damaged / "config.json").read_text())
    (damaged / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    shutil.copy(model / "model.safetensors", damaged / "model.safetensors")
    with pytest.raises(ModelError, match="not hold a BERT model"):
        Encoder(damaged)


def test_without_the_model_package_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(encoder_module, "MODEL_PACKAGE", "no_such_model_package")
    with pytest.raises(ModelError, match=r"-r requirements/sentence-model\.txt"):
        encoder_for(None)
