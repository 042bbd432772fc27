"""LLM packages whose checksums are valid but whose manifest is wrong for this runtime: an
architecture it does not implement, a config that does not match the stored tensors, an invalid
config. Each is refused at load with the status and the name of what is wrong (never a crash or a
model that runs on misread weights). Also a corrupted data section found in the lazy mode."""
import copy

import pytest

from lowbit import LowbitError
from lowbit.exporters.lbpk_container import PackageReader
from lowbit.llm.session import LlmSession
from lowbit_testutil import rewrite_manifest


@pytest.fixture(scope="module")
def raw_and_manifest(tiny_fp32_pkg):
    return tiny_fp32_pkg.read_bytes(), PackageReader(tiny_fp32_pkg).manifest


def _with(tmp_path, raw, man, **llm):
    m = copy.deepcopy(man)
    m["llm"].update(llm)
    p = tmp_path / "tampered.lbpk"
    p.write_bytes(rewrite_manifest(raw, m))
    return p


@pytest.mark.parametrize("change, words", [
    ({"arch": "gpt2"}, ["LB_ERR_UNSUPPORTED", "architecture 'gpt2'", "llama"]),
    ({"arch": None}, ["LB_ERR_UNSUPPORTED", "architecture ''"]),
    ({"hidden_size": 48}, ["LB_ERR_FORMAT", "embed", "expected"]),
    ({"num_layers": 3}, ["LB_ERR_NOT_FOUND", "layers.2.attn_norm"]),
    ({"num_kv_heads": 3}, ["LB_ERR_FORMAT", "invalid LLM config", "heads"]),
    ({"head_dim": 0}, ["LB_ERR_FORMAT", "invalid LLM config"]),
    ({"context_length": -5}, ["LB_ERR_FORMAT", "context -5"]),
    ({"embed_format": "q3"}, ["LB_ERR_UNSUPPORTED", "embedding format 'q3'"]),
])
def test_llm_package_with_wrong_config_is_refused(tmp_path, raw_and_manifest, change, words):
    raw, man = raw_and_manifest
    p = _with(tmp_path, raw, man, **change)
    with pytest.raises(LowbitError) as e:
        LlmSession(p)
    for w in words:
        assert w in str(e.value), (change, str(e.value))


def test_llm_package_untampered_rewrite_still_loads(tmp_path, raw_and_manifest):
    raw, man = raw_and_manifest  # the helper itself keeps a valid package valid
    p = _with(tmp_path, raw, man)
    assert len(LlmSession(p).generate([5, 6, 7], 3, stop=[])) == 3


def test_llm_lazy_load_finds_corrupt_weights_before_use(tmp_path, tiny_fp32_pkg):
    r = PackageReader(tiny_fp32_pkg)
    sec = next(s for s in r.sections.values() if s.kind == 2)
    data = bytearray(tiny_fp32_pkg.read_bytes())
    data[sec.offset + sec.size // 2] ^= 0x10
    p = tmp_path / "lazy_corrupt.lbpk"
    p.write_bytes(bytes(data))
    with pytest.raises(LowbitError, match=f"LB_ERR_CHECKSUM.*{sec.name}"):
        LlmSession(p, verify=False)
