import numpy as np

from newsanchor.dataset import Segment, split_segments
from newsanchor.train.mouth_data import WindowSet, ClipFeatures, window_starts


def _frames(segments):
    return {(s.clip, f) for seg in segments for s in [seg] for f in range(s.start, s.stop)}


def test_split_partitions_every_frame_once_in_80_10_10():
    clips = [(f"c{i:03d}", 75) for i in range(200)]
    split = split_segments(clips)
    train, val, test = (_frames(split[k]) for k in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 200 * 75
    assert len(test) == len(val) == 20 * 75  # short clips: the split is made of whole clips
    assert all(len(seg) == 75 for seg in split["test"])


def test_long_recordings_are_cut_inside_the_clip_into_spread_blocks():
    split = split_segments([("talk", 30_000)])
    assert [len(s) for s in split["test"]] == [300] * 10
    assert split["test"][0] == Segment("talk", 2700, 3000) and split["test"][-1] == Segment("talk", 29700, 30000)


def test_windows_stay_inside_their_segment_and_skip_frames_without_a_face():
    found = np.ones(200, bool)
    found[120] = False
    starts = window_starts(Segment("c", 10, 190), found, stride=20)
    assert starts[0] == 10 and all(10 <= s and s + 50 <= 190 for s in starts)
    assert all(not (s <= 120 < s + 50) for s in starts)
    assert window_starts(Segment("c", 0, 49), found, stride=5) == []


def test_window_batches_pair_4_mfcc_frames_with_each_mouth_frame():
    mfcc = np.repeat(np.arange(100, dtype=np.float32), 4)[:, None].repeat(13, axis=1)  # row 4k+j holds k
    mouth = np.arange(100, dtype=np.float32)[:, None].repeat(10, axis=1)
    windows = WindowSet({"c": ClipFeatures(mfcc, mouth, np.ones(100, bool))}, [Segment("c", 0, 100)], stride=25)
    a, m = windows.batch([1])
    assert a.shape == (1, 200, 13) and m.shape == (1, 50, 10)
    assert a[0, ::4, 0].tolist() == m[0, :, 0].tolist() == list(range(25, 75))


def test_a_few_clips_are_cut_inside_so_every_split_has_frames():
    split = split_segments([("a", 500), ("b", 900), ("c", 300)], 10, snap_shorter_than=0)
    assert all(sum(len(s) for s in split[k]) > 0 for k in ("train", "val", "test"))
    assert sum(len(s) for v in split.values() for s in v) == 1700


def test_small_datasets_get_fewer_blocks_so_held_out_pieces_hold_windows():
    from types import SimpleNamespace

    from newsanchor.dataset import dataset_split
    from newsanchor.train.mouth_data import WINDOW

    def split(*frames):
        return dataset_split(SimpleNamespace(clips=[{"id": f"c{i}", "frames": n} for i, n in enumerate(frames)]))

    for frames in [(1800,), (1850, 1850), (500, 750, 500), (30_000,)]:
        parts = split(*frames)
        for name in ("val", "test"):
            assert parts[name] and all(len(s) >= 2 * WINDOW for s in parts[name]), (frames, name, parts[name])
    assert len(split(30_000)["test"]) == 10  # a long recording keeps ten blocks
    assert len(split(1850, 1850)["test"]) == 3
