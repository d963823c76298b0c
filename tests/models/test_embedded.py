import hashlib
import sys

import pytest

from stepgraph.errors import ModelError
from stepgraph.models import embedded


def _fake_model(tmp_path, monkeypatch, parts: list[bytes], *, digest: str | None = None):
    """Install a tiny chunk package on sys.path and register it as an embedded model."""
    pkg = tmp_path / "site" / "fakechunk_part1"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for i, blob in enumerate(parts, start=1):
        mod = tmp_path / "site" / f"fakechunk_part{i}"
        (mod / "data").mkdir(parents=True, exist_ok=True)
        (mod / "__init__.py").write_text("")
        (mod / "data" / f"part{i:02d}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(parts)
    model = embedded.EmbeddedModel(
        name="fake",
        description="test",
        package="fakechunk-part",
        version="1",
        parts=len(parts),
        size=len(whole),
        sha256=digest or hashlib.sha256(whole).hexdigest(),
        filename="fake.gguf",
    )
    monkeypatch.setitem(embedded.EMBEDDED, "fake", model)
    monkeypatch.setenv("STEPGRAPH_CACHE", str(tmp_path / "cache"))
    for name in list(sys.modules):
        if name.startswith("fakechunk"):
            del sys.modules[name]
    return whole


def test_assemble_concatenates_parts_in_order_and_caches(tmp_path, monkeypatch):
    whole = _fake_model(tmp_path, monkeypatch, [b"GGUF-one-", b"two-", b"three"])
    seen = []
    path = embedded.assemble("fake", progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == whole
    assert seen[-1] == (len(whole), len(whole))
    assert embedded.cached_path("fake") == path
    assert embedded.model_path("fake") == path


def test_wrong_checksum_is_refused_and_leaves_no_file(tmp_path, monkeypatch):
    _fake_model(tmp_path, monkeypatch, [b"abc", b"def"], digest="0" * 64)
    with pytest.raises(ModelError, match="corrupt.*force-reinstall"):
        embedded.assemble("fake")
    assert embedded.cached_path("fake") is None
    assert not list((tmp_path / "cache" / "models").glob("*"))


def test_missing_part_says_how_to_install(tmp_path, monkeypatch):
    _fake_model(tmp_path, monkeypatch, [b"abc", b"def"])
    (tmp_path / "site" / "fakechunk_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(ModelError, match="stepgraph model pull fake"):
        embedded.assemble("fake")


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError, match="qwen2.5-coder-0.5b"):
        embedded.get("gpt-17")


@pytest.mark.model
def test_default_model_file_matches_its_pinned_hash(real_model):
    model = embedded.get(embedded.DEFAULT_MODEL)
    path = embedded.model_path()
    assert path.stat().st_size == model.size
    assert embedded.verify(path, model.sha256)
