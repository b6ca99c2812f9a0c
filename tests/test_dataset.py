import json

import numpy as np
import pytest

from newsanchor.dataset import FORMAT, EdgeWriter, PreparedDataset, pack_edges, unpack_edges
from newsanchor.errors import DatasetError


def test_edges_pack_round_trip_and_compress():
    rng = np.random.default_rng(0)
    edges = np.zeros((256, 256), bool)
    edges[rng.integers(0, 256, 3000), rng.integers(0, 256, 3000)] = True
    blob = pack_edges(edges)
    np.testing.assert_array_equal(unpack_edges(blob, 256), edges)
    assert len(pack_edges(np.zeros((256, 256), bool))) < 200  # empty maps cost next to nothing


def test_edge_writer_offsets_locate_every_frame(tmp_path):
    maps = [np.eye(64, dtype=bool), np.zeros((64, 64), bool), np.ones((64, 64), bool)]
    writer = EdgeWriter(tmp_path / "edges.bin")
    for m in maps:
        writer.write(m)
    offsets = writer.close()
    assert offsets.shape == (4,) and offsets[0] == 0 and offsets[-1] == (tmp_path / "edges.bin").stat().st_size
    data = (tmp_path / "edges.bin").read_bytes()
    for k, m in enumerate(maps):
        np.testing.assert_array_equal(unpack_edges(data[offsets[k]:offsets[k + 1]], 64), m)


def test_reading_something_that_is_not_a_dataset_says_so(tmp_path):
    with pytest.raises(DatasetError, match="not a prepared dataset"):
        PreparedDataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": FORMAT, "format_version": 99}))
    with pytest.raises(DatasetError, match="format version 99"):
        PreparedDataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        PreparedDataset(tmp_path)
