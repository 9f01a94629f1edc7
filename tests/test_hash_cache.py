"""Model digests are remembered by (size, mtime): checked on every load, hashed once."""

from rtseg.core import hash_cache


def test_a_digest_is_hashed_once_and_again_only_when_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("RTSEG_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()  # the cache folder exists, as it does after any earlier run
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights")
    hashed = []
    real = hash_cache.sha256_of
    monkeypatch.setattr(hash_cache, "sha256_of", lambda p: hashed.append(p) or real(p))
    first = hash_cache.cached_sha256(model)
    assert hash_cache.cached_sha256(model) == first and len(hashed) == 1  # the second load reads the cache
    model.write_bytes(b"other weights")  # an edited model cannot hide behind its old digest
    assert hash_cache.cached_sha256(model) != first and len(hashed) == 2
