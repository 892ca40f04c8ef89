"""Text embeddings: template ensembling, the real offline encoder, and the cache (hit / miss / stale)."""
import os
import numpy as np
import pytest

from edgeseg.errors import UserError
from edgeseg.text import build_encoder, class_embeddings, get_text_embeddings


class CountingEncoder:
    """A deterministic encoder that counts calls, to observe cache behaviour."""

    id = "counting"
    dim = 8

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        vectors = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts])
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_class_embeddings_are_normalised_template_means():
    encoder = CountingEncoder()
    templates = ("a {}.", "the {}.")
    emb = class_embeddings(encoder, ["sky", "sand"], templates)
    raw = encoder.encode(["a sky.", "the sky."]).mean(0)
    assert emb.shape == (2, 8)
    np.testing.assert_allclose(emb[0], raw / np.linalg.norm(raw), rtol=1e-5)


def test_cache_hit_miss_and_stale(tmp_path):
    encoder = CountingEncoder()
    first = get_text_embeddings(["sky", "grass"], "counting", ("a {}.",), tmp_path, encoder)
    assert encoder.calls == 1
    again = get_text_embeddings(["sky", "grass"], "counting", ("a {}.",), tmp_path, encoder)
    assert encoder.calls == 1  # hit
    np.testing.assert_array_equal(first, again)
    get_text_embeddings(["sky", "road"], "counting", ("a {}.",), tmp_path, encoder)
    assert encoder.calls == 2  # other class list: miss
    get_text_embeddings(["sky", "grass"], "counting", ("the {}.",), tmp_path, encoder)
    assert encoder.calls == 3  # other templates: miss
    # A stale file (same name, other contents) and a corrupt file are rebuilt, not used.
    cache_file = next(p for p in tmp_path.glob("*.npz") if p.stat().st_size)
    np.savez(cache_file, embeddings=np.zeros((2, 8)), key=np.array("something-else"))
    get_text_embeddings(["sky", "grass"], "counting", ("a {}.",), tmp_path, encoder)
    assert encoder.calls == 4
    for path in tmp_path.glob("*.npz"):
        path.write_bytes(b"not a zip")
    rebuilt = get_text_embeddings(["sky", "grass"], "counting", ("a {}.",), tmp_path, encoder)
    assert encoder.calls == 5 and np.isfinite(rebuilt).all()


def test_minilm_is_real_and_offline():
    encoder = build_encoder("minilm")
    emb = class_embeddings(encoder, ["grass", "lawn", "brick wall"])
    assert emb.shape == (3, 384)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # real semantics, not random vectors


def test_unknown_encoder_is_a_user_error():
    with pytest.raises(UserError, match="valid: minilm"):
        build_encoder("word2vec")


def test_openclip_without_weights_names_the_fix():
    with pytest.raises(UserError, match="openclip:NAME/PATH"):
        build_encoder("openclip:ViT-B-32/laion2b_s34b_b79k")


def test_openclip_weights_come_from_a_file_or_the_cache_and_never_wait_on_the_network(tmp_path, monkeypatch):
    import open_clip

    from edgeseg import hub
    from edgeseg.text import _openclip_weights

    local = tmp_path / "weights.bin"
    local.write_bytes(b"x")
    assert _openclip_weights(open_clip, "ViT-B-32", str(local)) == str(local)  # a file: as it is
    asked = []
    monkeypatch.setattr(hub, "cached_file", lambda repo, names: asked.append(repo) or str(local))
    assert _openclip_weights(open_clip, "ViT-B-32", "laion2b_s34b_b79k") == str(local)  # a tag: its cached file
    assert asked == ["laion/CLIP-ViT-B-32-laion2B-s34B-b79K"]
    monkeypatch.setattr(hub, "cached_file", lambda repo, names: None)
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: pytest.fail("EDGESEG_OFFLINE=1 must not probe the hub"))
    with pytest.raises(UserError, match="not in the local cache"):
        _openclip_weights(open_clip, "ViT-B-32", "laion2b_s34b_b79k")
    with pytest.raises(UserError, match="tags: openai"):
        _openclip_weights(open_clip, "ViT-B-32", "no-such-tag")


def test_loading_the_text_encoder_leaves_the_environment_as_it_was(monkeypatch):
    """Issue #16: HF_HUB_OFFLINE used to stay set after a text encoder load, stopping later hub downloads."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    encoder = build_encoder("minilm")
    assert encoder.encode(["a cat"]).shape == (1, 384)
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TRANSFORMERS_OFFLINE"] == "0"
