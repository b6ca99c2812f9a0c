"""Template choice and back-and-forth looping (template.py)."""

from __future__ import annotations

import numpy as np
import pytest

from newsanchor.template import _window_means, find_template, pingpong_indices, score_template_frames


def test_pingpong_never_jumps_and_covers_the_template():
    idx = pingpong_indices(5, 23)
    assert idx[:10].tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1]
    assert np.all(np.abs(np.diff(idx)) == 1) and set(idx.tolist()) == set(range(5))
    # a stream continued in pieces equals one long call
    np.testing.assert_array_equal(np.concatenate([pingpong_indices(5, 7), pingpong_indices(5, 16, start=7)]), idx)
    assert pingpong_indices(1, 3).tolist() == [0, 0, 0] and len(pingpong_indices(4, 0)) == 0
    with pytest.raises(ValueError):
        pingpong_indices(0, 3)


def test_window_means_mark_windows_with_a_faceless_frame():
    means = _window_means(np.array([1.0, 2.0, np.inf, 4.0, 6.0]), 2)
    assert means.tolist() == [1.5, np.inf, np.inf, 5.0]


def _scores(n, speech=0.0, opening=0.02, motion=0.003):
    return {"speech": np.full(n, speech), "opening": np.full(n, opening), "motion": np.full(n, motion)}


def test_the_quiet_closed_steady_stretch_wins():
    talking = _scores(200, speech=1.0, opening=0.15)
    mixed = _scores(200, speech=1.0, opening=0.15)
    mixed["speech"][120:180] = 0.0
    mixed["opening"][120:180] = 0.02
    mixed["motion"][150] = np.inf  # a frame without a face inside the quiet part
    choice = find_template({"a": talking, "b": mixed}, length=25)
    assert choice.clip == "b" and 120 <= choice.start and choice.stop <= 150 and len(choice) == 25
    assert choice.speech == 0.0


def test_short_recordings_serve_whole_and_faceless_ones_are_refused():
    assert len(find_template({"a": _scores(60)}, length=100)) == 60
    none = _scores(60)
    none["opening"][:] = np.inf
    with pytest.raises(ValueError, match="face"):
        find_template({"a": none}, length=30)


@pytest.mark.slow
def test_scores_on_a_real_prepared_clip(grid10):
    clip = grid10.clips[0]["id"]
    arrays = grid10.arrays(clip)
    scores = score_template_frames(arrays["landmarks"], arrays["mouth"], arrays["face_found"],
                                   arrays["audio"].astype(np.float32) / 32768)
    n = len(arrays["landmarks"])
    assert all(len(v) == n for v in scores.values())
    found = arrays["face_found"]
    assert np.all(np.isfinite(scores["opening"][found])) and np.all((scores["speech"] >= 0) & (scores["speech"] <= 1))
    # GRID clips open and close in silence: the first and last 10 frames are quieter than the middle
    assert scores["speech"][:10].mean() < scores["speech"][25:50].mean()
    assert np.nanmedian(scores["motion"][found]) < 0.05
