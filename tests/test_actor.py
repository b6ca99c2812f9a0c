"""The synthetic actor (newsanchor.demo): a detectable face, visemes that open and close the mouth
the way dlib sees it, smooth trajectories, atomic mp4s, determinism."""

import itertools

import numpy as np
import pytest

from newsanchor import media
from newsanchor.demo import PARAM_NAMES, SyntheticActor, mouth_trajectory, visemes_for, write_actor_video
from newsanchor.features.face import FaceTracker
from newsanchor.features.mouth import mouth_size, normalise_mouth


@pytest.fixture(scope="module")
def actor():
    return SyntheticActor()  # 384², seed 0; the portrait is cached per size for the whole run


def _opening(landmarks: np.ndarray) -> float:
    """Inner-lip opening in inter-ocular distances (the measure prepare and templates use)."""
    return float(mouth_size(normalise_mouth(landmarks))[1])


def test_rest_face_is_a_real_face_found_where_the_actor_put_it(actor):
    frame, landmarks = actor.frame_for(np.zeros(len(PARAM_NAMES)))
    assert frame.shape == (384, 384, 3) and frame.dtype == np.uint8
    assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
    np.testing.assert_allclose(landmarks, actor.landmarks, atol=1e-4)
    assert abs(_opening(landmarks)) < 1e-3  # rest = lips closed (the photo itself shows teeth)
    found = FaceTracker().update(frame)
    assert found is not None
    error = np.linalg.norm(found - landmarks, axis=1)
    assert error.mean() < 1.5 and error.max() < 3.5, (error.mean(), error.max(), error.argmax())
    # framed so that the project's crop (2.1 × landmark box) is a natural 256 px
    assert 240 < 2.1 * np.ptp(landmarks, axis=0).max() < 272


def test_closed_and_open_phonemes_measured_by_the_actor_and_by_dlib(actor):
    frames = {}
    for symbol in ("p", "a"):  # 0.4 s of one phoneme: frame 5 (0.22 s) is in its middle
        frames[symbol] = list(itertools.islice(actor.frames([(symbol, 0.0, 0.4)], 10), 5, 6))[0]
    (closed, closed_truth), (opened, open_truth) = frames["p"], frames["a"]
    assert abs(_opening(closed_truth)) < 0.01 and _opening(open_truth) > 0.2
    closed_dlib, open_dlib = _opening(FaceTracker().update(closed)), _opening(FaceTracker().update(opened))
    assert closed_dlib < 0.05 and open_dlib > 0.2
    assert abs(open_dlib - _opening(open_truth)) < 0.05  # the painted mouth is where the landmarks say
    # the open mouth is a dark hole: inside the inner lips the frame is much darker than at rest
    lips = open_truth[[61, 62, 63, 65, 66, 67]].mean(axis=0).round().astype(int)
    assert opened[lips[1] + 2, lips[0]].mean() < 0.5 * closed[lips[1] + 2, lips[0]].mean()


def test_silence_and_untimed_gaps_close_the_mouth():
    np.testing.assert_array_equal(mouth_trajectory([], 30), np.zeros((30, 3), np.float32))
    said = mouth_trajectory([("a", 0.0, 0.3), (" ", 0.3, 0.9), ("a", 0.9, 1.2), ("a", 2.0, 2.3)], 75)
    assert said[3, 0] > 0.8  # inside the first /a/
    assert np.abs(said[16:18]).max() < 0.01  # 0.64..0.7 s: the pause symbol
    assert np.abs(said[40:42]).max() < 0.01  # 1.6..1.68 s: no phoneme at all
    assert np.abs(said[-3:]).max() < 0.01  # 2.88..3 s: after the last phoneme


def test_lip_closure_is_reached_between_vowels():
    open_close_open = mouth_trajectory([("a", 0.0, 0.3), ("m", 0.3, 0.38), ("a", 0.38, 0.7)], 18)
    assert open_close_open[8, 0] < 0.1 < 0.8 < open_close_open[3, 0]  # /m/ spans frame 8 (0.34 s)


def test_trajectory_has_the_right_length_and_moves_smoothly(actor):
    rng = np.random.default_rng(3)
    symbols = list("pbmfvaeiouwθʃɹtdnks ") + ["AA1", "sh"]
    t, phonemes = 0.0, []
    for _ in range(120):  # ~12 s of fast, random "speech" with pauses
        duration = rng.uniform(0.03, 0.18)
        phonemes.append((symbols[rng.integers(len(symbols))], t, t + duration))
        t += duration + (rng.uniform(0.1, 0.6) if rng.random() < 0.08 else 0.0)
    n_frames = int(t * 25) + 5
    params = actor.trajectory(phonemes, n_frames)
    assert params.shape == (n_frames, len(PARAM_NAMES)) and params.dtype == np.float32
    assert actor.trajectory(phonemes, 0).shape == (0, len(PARAM_NAMES))
    mouth = params[:, :3]
    assert mouth[:, 0].min() >= 0 and mouth[:, 0].max() > 0.6 and np.abs(mouth[:, 1:]).max() <= 1
    assert np.abs(np.diff(mouth, axis=0)).max() < 0.45  # per frame: no jumps between visemes
    head = params[:, 4:]
    assert np.abs(np.diff(head, axis=0)).max() < 0.5 and 0.5 < np.abs(head[:, 0]).max() < 0.01 * 384
    assert (params[:, 3] > 0.9).sum() >= 2  # blinks, every few seconds
    # the first frames of a longer clip are those of a shorter one
    np.testing.assert_array_equal(actor.trajectory(phonemes, 50), params[:50])


def test_visemes_of_ipa_arpabet_and_letters():
    assert visemes_for(["p", "b", "m", "f", "a", "i", "u", "w", "ʃ"]) == [
        "closed", "closed", "closed", "lip_teeth", "open", "wide", "rounded", "rounded", "postalveolar"]
    assert visemes_for(["P", "AA1", "IY0", "UW", "sh", "zz", "ʔ"]) == [
        "closed", "open", "wide", "rounded", "postalveolar", "neutral", "neutral"]
    # piper's symbols: sentence markers, word gap, punctuation; stress belongs to the next sound,
    # length to the previous one
    assert visemes_for(["^", "ˈ", "ɑ", "ː", " ", ",", "$"]) == ["rest", "open", "open", "open", "rest", "rest", "rest"]


def test_the_warp_never_folds_over(actor):
    """Every triangle keeps its orientation at the extremes of every parameter: a fold would
    mirror skin over skin. Triangles may collapse (the closed inner lips) but never flip."""
    source, _, triangles = actor.mesh(np.zeros(len(PARAM_NAMES)))

    def doubled_areas(points):
        a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
        return (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]

    reference = np.sign(doubled_areas(source))
    for corner in itertools.product((0, 1), (-1, 1), (0, 1), (0, 1), (-3, 3), (-2, 2), (-0.015, 0.015)):
        _, target, _ = actor.mesh(corner)
        assert np.all(doubled_areas(target) * reference > -1e-6), corner


def test_same_seed_same_video_other_seed_other_motion(actor):
    phonemes = [("h", 0.0, 0.1), ("ə", 0.1, 0.3), ("l", 0.3, 0.4), ("oʊ", 0.4, 0.7)]
    again = SyntheticActor(seed=0)
    for (f1, l1), (f2, l2) in zip(actor.frames(phonemes, 20), again.frames(phonemes, 20)):
        np.testing.assert_array_equal(f1, f2)
        np.testing.assert_array_equal(l1, l2)
    other = SyntheticActor(seed=1).trajectory(phonemes, 20)
    mine = actor.trajectory(phonemes, 20)
    np.testing.assert_array_equal(other[:, :3], mine[:, :3])  # same speech…
    assert not np.array_equal(other[:, 4:], mine[:, 4:])  # …different head motion


def test_frame_for_checks_its_parameters(actor):
    with pytest.raises(ValueError, match="params"):
        actor.frame_for([0.5, 0.0])
    with pytest.raises(ValueError, match="params"):
        actor.frame_for([np.nan, 0, 0])
    with pytest.raises(ValueError, match="start <= end"):
        actor.trajectory([("a", 0.5, 0.2)], 10)


def test_write_actor_video_writes_frames_and_audio_in_sync(tmp_path, actor):
    wav = (0.1 * np.sin(2 * np.pi * 220 * np.arange(14880) / 16000)).astype(np.float32)  # 0.93 s
    phonemes = [("m", 0.0, 0.1), ("a", 0.1, 0.5), (" ", 0.5, 0.93)]
    path = tmp_path / "actor.mp4"
    result = write_actor_video(path, phonemes, wav, seed=0)
    assert result == {"frames": 24, "duration_s": pytest.approx(24 / 25)}  # 0.93 s → 23.25 → 24 frames
    info = media.probe(path)
    assert (info.width, info.height) == (384, 384) and info.has_audio
    assert info.audio_duration_s == pytest.approx(24 / 25, abs=0.05)
    decoded = list(media.iter_video_frames(path))
    assert len(decoded) == 24
    expected, _ = actor.frame_for(actor.trajectory(phonemes, 24)[8])  # mid-/a/
    assert np.abs(decoded[8].astype(float) - expected).mean() < 4  # H.264 loss only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["actor.mp4"]


def test_write_actor_video_leaves_nothing_on_error(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no audio"):
        write_actor_video(tmp_path / "empty.mp4", [], np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="mono"):
        write_actor_video(tmp_path / "stereo.mp4", [], np.zeros((2, 1600), np.float32))
    calls = []
    real = SyntheticActor.frame_for

    def failing(self, params):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("renderer broke")
        return real(self, params)

    monkeypatch.setattr(SyntheticActor, "frame_for", failing)
    with pytest.raises(RuntimeError, match="renderer broke"):
        write_actor_video(tmp_path / "broken.mp4", [("a", 0, 0.5)], np.zeros(16000, np.float32))
    assert list(tmp_path.iterdir()) == []
