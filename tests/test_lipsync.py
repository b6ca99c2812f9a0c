"""Lip-sync measurement (evaluate/lipsync.py): envelope, pauses, verdicts, and the whole measure
on synthetic-actor videos whose mouths follow the speech, stand still, or follow other speech."""

from __future__ import annotations

import math

import numpy as np
import pytest

from newsanchor.evaluate.lipsync import (LipSyncScores, LipSyncTrack, judge, lipsync_scores, markdown_table,
                                         measure_video, pause_mask, report, speech_envelope)


def test_speech_envelope_is_rms_per_frame_and_zero_past_the_end():
    wav = np.concatenate([np.full(640, 0.5), -np.full(640, 0.25), np.full(100, 1.0)]).astype(np.float32)
    np.testing.assert_allclose(speech_envelope(wav, 4), [0.5, 0.25, math.sqrt(100 / 640), 0.0])


def test_pauses_are_long_quiet_runs_without_their_edges():
    envelope = np.ones(40)
    envelope[5:9] = 0.0  # 4 quiet frames: a stop inside a word, not a pause
    envelope[20:30] = 0.0  # 10 quiet frames: a pause; its 2 first and last frames are left out
    assert np.flatnonzero(pause_mask(envelope)).tolist() == list(range(22, 28))


def _scores(**changes) -> LipSyncScores:
    base = dict(frames=100, face_found=1.0, correlation=0.5, best_lag_frames=0, best_lag_correlation=0.5,
                pause_frames=20, pause_opening=0.02, speech_opening=0.10)
    return LipSyncScores(**{**base, **changes})


def test_verdicts_are_relative_to_the_real_recording():
    real = _scores()
    assert judge(_scores(correlation=0.41, pause_opening=0.039), real) == {
        "face_found": True, "correlation": True, "closed_in_pauses": True}
    assert judge(_scores(face_found=0.9, correlation=0.39, pause_opening=0.041), real) == {
        "face_found": False, "correlation": False, "closed_in_pauses": False}
    assert judge(_scores(correlation=math.nan), real)["correlation"] is False  # a mouth that never moves
    assert judge(_scores(), None) == {"face_found": True, "correlation": None, "closed_in_pauses": None}
    table = markdown_table(report(_scores(), real))
    assert "NOT met" not in table and "≥ 0.400 (80% of real)" in table


def test_scores_of_a_mouth_that_follows_the_envelope_one_frame_late():
    rng = np.random.default_rng(0)
    envelope = np.clip(np.convolve(rng.random(300), np.ones(5) / 5, "same") - 0.3, 0, None)
    envelope[100:130] = 0.0
    opening = np.concatenate([[0.0], envelope[:-1]]) * 0.2 + 0.01
    opening[50] = math.nan  # a frame without a face
    found = ~np.isnan(opening)
    scores = lipsync_scores(LipSyncTrack(found, opening, envelope))
    assert scores.face_found == pytest.approx(299 / 300) and scores.best_lag_frames == 1
    assert scores.best_lag_correlation == pytest.approx(1.0) and scores.correlation < 0.95
    assert scores.pause_frames >= 26 and scores.pause_opening == pytest.approx(0.01)


@pytest.fixture(scope="module")
def actor_videos(tmp_path_factory):
    """Three 256² synthetic-actor videos over the same TTS speech: mouth synced, frozen, and
    moving to the same speech played backwards."""
    from newsanchor.demo import write_actor_video
    from newsanchor.speech import synthesize_speech

    root = tmp_path_factory.mktemp("lipsync")
    speech = synthesize_speech("Good evening. Tonight the council met to approve the budget. Then it rained.")
    phonemes = [(p.symbol, p.start, p.end) for p in speech.phonemes]
    duration = speech.duration
    reversed_phonemes = [(s, duration - b, duration - a) for s, a, b in reversed(phonemes)]
    videos = {}
    for name, timing in (("synced", phonemes), ("frozen", []), ("reversed", reversed_phonemes)):
        videos[name] = root / f"{name}.mp4"
        write_actor_video(videos[name], timing, speech.waveform, size=256)
    return videos


@pytest.mark.slow
def test_measured_from_outside_synced_beats_frozen_and_reversed(actor_videos):
    synced, frozen, reversed_ = (lipsync_scores(measure_video(actor_videos[n])) for n in ("synced", "frozen", "reversed"))
    assert synced.face_found >= 0.95 and synced.correlation > 0.4
    assert synced.pause_frames > 0 and synced.pause_opening < 0.5 * synced.speech_opening
    assert judge(synced, synced) == {"face_found": True, "correlation": True, "closed_in_pauses": True}
    assert judge(frozen, synced)["correlation"] is False  # a still mouth has no correlation at all
    assert judge(reversed_, synced)["correlation"] is False and reversed_.correlation < 0.5 * synced.correlation
