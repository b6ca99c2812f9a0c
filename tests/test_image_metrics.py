import numpy as np
import pytest

from newsanchor.evaluate.image_metrics import flicker, landmark_distance, mouth_box, psnr, ssim


def _image(seed=0, size=64):
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(0, 256, (size // 8, size // 8, 3)), np.ones((8, 8, 1)))
    return base.astype(np.uint8)


def test_psnr_matches_its_definition():
    a = _image()
    b = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(float) - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / mse))
    assert psnr(a, a) == float("inf")


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    a = _image()
    noisy = np.clip(a + np.random.default_rng(1).normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    very_noisy = np.clip(a + np.random.default_rng(1).normal(0, 80, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    assert 1.0 > ssim(a, noisy) > ssim(a, very_noisy)
    assert ssim(a, 255 - a) < 0


def test_mouth_box_surrounds_the_mouth_and_stays_in_the_crop():
    landmarks = np.zeros((68, 2))
    landmarks[48:68] = [[100, 150], [140, 150], [120, 140], [120, 165]] * 5
    x0, y0, x1, y1 = mouth_box(landmarks, 256)
    assert x0 == 90 and x1 == 151 and y0 == 130 and y1 == 176
    assert mouth_box(landmarks * 2, 256)[2] == 256


def test_flicker_ignores_what_is_kept_out():
    still = _image()
    moving = still.copy()
    moving[:8, :8] = 255 - moving[:8, :8]
    mask = np.zeros(still.shape[:2], bool)
    mask[:8, :8] = True
    assert flicker([still, moving, still]) > 0
    assert flicker([still, moving, still], keep_out=mask) == 0.0


def test_landmark_distance_is_small_on_a_real_face_and_nan_without_one(shared_data):
    from newsanchor import media
    from newsanchor.features.face import track_landmarks

    frames = [f for _, f in zip(range(10), media.iter_video_frames(shared_data / "grid_s1" / "bbaf2n.mp4"))]
    landmarks = track_landmarks(iter(frames), len(frames))
    lmd = landmark_distance(frames, landmarks)
    assert np.nanmax(lmd) < 0.5  # the same tracker on the same frames
    shifted = landmarks.copy()
    shifted[:, 48:68, 1] += 3.0
    assert np.nanmean(landmark_distance(frames, shifted)) == pytest.approx(3.0, abs=0.5)
    assert np.isnan(landmark_distance([np.zeros_like(frames[0])], landmarks[:1])).all()
