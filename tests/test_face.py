import cv2
import numpy as np
import pytest

from newsanchor import media
from newsanchor.features.face import Box, FaceTracker, detect_faces, predictor_path, smooth_landmarks


def test_predictor_ships_in_a_dependency():
    path = predictor_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 50_000_000


def test_box_iou():
    a = Box(0, 0, 10, 10)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert a.iou(Box(100, 0, 10, 10)) == 0.0


def test_smoothing_reduces_jitter_but_keeps_runs_and_gaps_apart():
    rng = np.random.default_rng(0)
    t = np.arange(60)
    truth = np.zeros((60, 68, 2), np.float32)
    truth[..., 0] = (10 * np.sin(t / 6))[:, None]
    noisy = truth + rng.normal(0, 1, truth.shape).astype(np.float32)
    found = np.ones(60, bool)
    found[30] = False  # a gap: the two runs are smoothed separately
    noisy[30] = 1000.0  # garbage in the gap must not leak into its neighbours
    smoothed = smooth_landmarks(noisy, found, window=5)
    err_before = np.abs(noisy - truth)[found].mean()
    err_after = np.abs(smoothed - truth)[found].mean()
    assert err_after < 0.75 * err_before
    assert np.abs(smoothed[29] - truth[29]).max() < 5 and np.abs(smoothed[31] - truth[31]).max() < 5
    np.testing.assert_array_equal(smooth_landmarks(noisy, found, window=1), noisy)


def _first_frame(path):
    return next(iter(media.iter_video_frames(path)))


def test_detects_a_face_and_finds_68_plausible_landmarks(shared_data):
    frame = _first_frame(shared_data / "clips" / "hdtf_aoc.mp4")
    faces = detect_faces(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    assert len(faces) == 1
    landmarks = FaceTracker().update(frame)
    assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
    box = faces[0][0]
    # mouth below the nose below the eyes, all inside the detected face
    assert landmarks[36:48, 1].mean() < landmarks[27:36, 1].mean() < landmarks[48:68, 1].mean()
    assert abs(landmarks[:, 0].mean() - box.cx) < box.w / 4


def test_tracker_keeps_one_identity_when_a_second_face_appears(shared_data):
    person = _first_frame(shared_data / "clips" / "obama_address_1.mp4")  # 256×256
    other = _first_frame(shared_data / "clips" / "hdtf_aoc.mp4")
    other = cv2.resize(other, (256, 256), interpolation=cv2.INTER_AREA)
    tracker = FaceTracker()
    alone = np.concatenate([person, np.zeros_like(person)], axis=1)
    together = np.concatenate([person, other], axis=1)
    first = tracker.update(alone)
    assert first is not None and first[:, 0].max() < 256
    for _ in range(12):  # past two key frames with both faces visible
        landmarks = tracker.update(together)
        assert landmarks is not None and landmarks[:, 0].max() < 256  # still the person on the left
    np.testing.assert_allclose(landmarks, first, atol=3)
    # the person leaves and only the other face remains: reported as no face, never a switch
    only_other = np.concatenate([np.zeros_like(person), other], axis=1)
    gone = [tracker.update(only_other) for _ in range(11)]
    assert all(g is None for g in gone[5:])
    # what the predictor drew before the detector noticed is retracted (conservatively: every
    # frame since the last confirming key frame, so fewer than key_interval frames)
    first_gone = 13 + next(i for i, g in enumerate(gone) if g is None)
    retracted = tracker.take_retracted()
    assert set(range(13, first_gone)) <= set(retracted) and len(retracted) < tracker.config.key_interval
    # the person comes back on the other side: re-acquired by identity
    swapped = np.concatenate([other, person], axis=1)
    back = [tracker.update(swapped) for _ in range(6)]
    assert back[-1] is not None and back[-1][:, 0].min() > 256


def test_no_face_in_a_blank_frame():
    assert FaceTracker().update(np.full((120, 160, 3), 90, np.uint8)) is None
