"""The pieces of a sharded build: serialize/deserialize, fingerprint, merge_from, merge_topk."""

import numpy as np
import pytest

import vq
from conftest import clusters


def trained_bytes(spec, x, metric=vq.METRIC_L2):
    index = vq.index_factory(x.shape[1], spec, metric)
    index.train(x)
    return vq.serialize_index(index)


def test_serialize_round_trips_every_bytes_like(data, tmp_path):
    x, q = data
    index = vq.index_factory(16, "IVF16,PQ8", vq.METRIC_L2)
    index.train(x)
    index.add(x)
    blob = vq.serialize_index(index)
    assert isinstance(blob, bytes)
    vq.write_index(index, tmp_path / "i.vq")
    assert blob == (tmp_path / "i.vq").read_bytes(), "the same bytes write_index writes"
    D, I = index.search(q, 5, nprobe=4)
    for form in (blob, bytearray(blob), memoryview(blob), np.frombuffer(blob, dtype=np.uint8)):
        back = vq.deserialize_index(form)
        D2, I2 = back.search(q, 5, nprobe=4)
        np.testing.assert_array_equal(I2, I)
        np.testing.assert_array_equal(D2, D)
    damaged = bytearray(blob)
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(vq.FormatError):
        vq.deserialize_index(bytes(damaged))
    with pytest.raises(TypeError):
        vq.deserialize_index("not bytes")


@pytest.mark.parametrize("spec", ["HNSW16", "IVF16,PQ8x4fs,RFlat", "Flat"])
def test_pickle_and_deepcopy_give_the_same_answers_and_an_independent_index(data, spec):
    import copy
    import pickle

    x, q = data
    index = vq.index_factory(16, spec, vq.METRIC_L2)
    index.train(x)
    index.add(x)
    D, I = index.search(q, 5)
    rebuild, (blob,) = index.__reduce__()
    assert rebuild is vq.deserialize_index and blob == vq.serialize_index(index)
    back = pickle.loads(pickle.dumps(index))
    assert vq.serialize_index(back) == blob, "a loaded index saves the bytes it came from"
    twin = copy.deepcopy(index)
    for other in (back, twin):
        D2, I2 = other.search(q, 5)
        np.testing.assert_array_equal(I2, I)
        np.testing.assert_array_equal(D2, D)
    twin.add(x[:10])
    assert (twin.ntotal, index.ntotal) == (len(x) + 10, len(x))


def test_fingerprint_is_the_trained_state(data):
    x, _ = data
    blob = trained_bytes("IVF16,SQ8", x)
    a, b = vq.deserialize_index(blob), vq.deserialize_index(blob)
    a.add(x[:100])
    assert a.fingerprint() == b.fingerprint() != 0
    other = vq.deserialize_index(trained_bytes("IVF16,SQ8", clusters(3000, 16, seed=9)))
    assert other.fingerprint() != a.fingerprint()
    assert vq.index_factory(16, "HNSW16").fingerprint() == vq.index_factory(16, "HNSW16").fingerprint()
    assert vq.index_factory(16, "HNSW16").fingerprint() != vq.index_factory(16, "HNSW32").fingerprint()


@pytest.mark.parametrize("spec", ["IVF16,Flat", "IVF16,PQ8", "IVF16,PQ8x4fs", "IVF16,SQ8,RFlat"])
def test_merged_shards_equal_the_single_build(data, spec):
    x, q = data
    blob = trained_bytes(spec, x)
    single = vq.deserialize_index(blob)
    single.add(x)
    parts = np.array_split(np.arange(len(x)), 4)
    shards = []
    for ids in parts:
        shard = vq.deserialize_index(blob)
        shard.add_with_ids(x[ids], ids)
        shards.append(shard)
    merged = shards[0]
    for shard in shards[1:]:
        merged.merge_from(shard)
        assert shard.ntotal == 0, "merge_from moves the contents"
    assert merged.ntotal == len(x)
    assert vq.serialize_index(merged) == vq.serialize_index(single), "bit for bit"
    with pytest.raises(vq.VqError, match="merged into another"):
        shards[1].search(q, 1)


def test_merge_refusals_keep_both_indexes(data):
    x, q = data
    blob = trained_bytes("IVF16,PQ8", x)
    a = vq.deserialize_index(blob)
    a.add(x[:1000])
    stranger = vq.deserialize_index(trained_bytes("IVF16,PQ8", clusters(3000, 16, seed=5)))
    stranger.add(x[1000:1100])
    with pytest.raises(vq.FingerprintMismatch, match="trained separately"):
        a.merge_from(stranger, 1000)
    assert stranger.ntotal == 100 and a.ntotal == 1000
    flat = vq.deserialize_index(trained_bytes("IVF16,Flat", x))
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge_from(flat)
    with pytest.raises(ValueError, match="itself"):
        a.merge_from(a)
    with pytest.raises(ValueError, match="shift_ids"):
        a.merge_from(vq.deserialize_index(blob), -1)
    g1, g2 = vq.index_factory(16, "HNSW16"), vq.index_factory(16, "HNSW16")
    g1.add(x[:10])
    g2.add(x[10:20])
    with pytest.raises(vq.VqError, match="cannot merge another index"):
        g1.merge_from(g2, 10)
    assert g2.ntotal == 10, "refused before anything moved"
    b = vq.deserialize_index(blob)
    b.add(x[1000:])
    a.merge_from(b, 1000)
    assert a.ntotal == len(x)
    _, I = a.search(x[-1:], 1, nprobe=16)
    assert I[0, 0] == len(x) - 1


@pytest.mark.parametrize("spec", ["IVF16,PQ8", "IVF16,PQ8x4fs", "IVF16,SQ8,RFlat"])
def test_a_merge_refused_for_a_duplicate_id_keeps_the_other_index(data, spec):
    x, q = data
    blob = trained_bytes(spec, x)
    a = vq.deserialize_index(blob)
    a.add(x[:1000])
    b = vq.deserialize_index(blob)
    b.add_with_ids(x[1000:1500], np.arange(900, 1400))  # 900..999 are a's too
    a_bytes, b_bytes = vq.serialize_index(a), vq.serialize_index(b)
    D_b, I_b = b.search(q, 5, nprobe=16)
    with pytest.raises(ValueError, match="already in the index"):
        a.merge_from(b)
    assert b.ntotal == 500 and a.ntotal == 1000, "refused before anything moved"
    assert vq.serialize_index(b) == b_bytes and vq.serialize_index(a) == a_bytes
    D, I = b.search(q, 5, nprobe=16)
    np.testing.assert_array_equal(I, I_b)
    np.testing.assert_array_equal(D, D_b)
    a.merge_from(b, 100)  # shifted clear of a's ids (1000..1499): now it goes through
    assert a.ntotal == 1500 and b.ntotal == 0
    _, I = a.search(x[1000:1500], 5, nprobe=16)
    assert np.mean([1000 + i in row for i, row in enumerate(I)]) > 0.9, "b's vectors under their shifted ids"


def test_merge_topk_over_exact_shards_equals_one_exact_search(data):
    x, q = data
    k = 10
    D_list, I_list = [], []
    for ids in np.array_split(np.arange(len(x)), 3):
        shard = vq.index_factory(16, "Flat")
        shard.add_with_ids(x[ids], ids)
        D, I = shard.search(q, k)
        D_list.append(D)
        I_list.append(I)
    D, I = vq.merge_topk(D_list, I_list, k, vq.METRIC_L2)
    D1, I1 = vq.knn(q, x, k)
    np.testing.assert_array_equal(I, I1)
    np.testing.assert_allclose(D, D1, rtol=1e-5)
    # Padding (-1) is dropped, and a result shorter than k pads again.
    D, I = vq.merge_topk([D_list[0][:, :2]], [np.full((len(q), 2), -1)], 3, "l2")
    assert (I == -1).all() and I.shape == (len(q), 3)
    # Inner product: larger is better.
    D, I = vq.merge_topk([np.array([[1.0, 0.5]]), np.array([[0.9, 0.1]])], [np.array([[1, 2]]), np.array([[3, 4]])], 3, "ip")
    assert I.tolist() == [[1, 3, 2]]
    with pytest.raises(ValueError, match="one \\(D, I\\) pair per shard"):
        vq.merge_topk(D_list, I_list[:2], k)
    with pytest.raises(ValueError, match="only pads"):
        vq.merge_topk([D_list[0]], [np.full_like(I_list[0], -2)], k)
    with pytest.raises(ValueError, match="shape"):
        vq.merge_topk([D_list[0]], [I_list[0][:, :3]], k)
    with pytest.raises(ValueError):
        vq.merge_topk(D_list, I_list, 0)
