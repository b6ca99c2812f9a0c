"""Jaw correction and synthetic facial maps (newsanchor.facemap) on synthetic faces."""

from __future__ import annotations

import numpy as np
import pytest

from newsanchor.facemap import (
    CHANNELS,
    JawModel,
    correct_jaw,
    facial_map,
    fit_jaw,
    jaw_error,
    lower_face_mask,
    map_to_rgb,
)
from newsanchor.facemap.draw import line_thickness
from newsanchor.facemap.jaw import normalise_jaw
from newsanchor.features.mouth import face_pose, mouth_size, normalise_mouth

# How far (IOD units) the chin drops per IOD of inner-lip opening in the synthetic faces.
CHIN_DROP_PER_OPENING = 0.8


def _upright_face(opening: float, width: float = 0.9) -> np.ndarray:
    """A crude 68-point face in the normalised frame (nose centre at 0, IOD 1, y down).

    The jawline's points drop with the mouth opening, most at the chin, none at the ears.
    """
    face = np.zeros((68, 2))
    angles = np.linspace(np.pi, 0.0, 17)  # jaw 0 (image left, ear) .. 16 (image right, ear)
    chin_weight = np.sin(angles)  # 0 at the ears, 1 at the chin
    face[0:17, 0] = 1.0 * np.cos(angles)
    face[0:17, 1] = -0.3 + 1.3 * np.sin(angles) + CHIN_DROP_PER_OPENING * opening * chin_weight
    face[17:22] = np.stack([np.linspace(-0.8, -0.2, 5), np.full(5, -0.75)], axis=1)
    face[22:27] = np.stack([np.linspace(0.2, 0.8, 5), np.full(5, -0.75)], axis=1)
    nose = np.concatenate([np.stack([np.zeros(4), np.linspace(-0.5, 0.1, 4)], axis=1),
                           np.stack([np.linspace(-0.2, 0.2, 5), np.full(5, 0.2)], axis=1)])
    face[27:36] = nose - nose.mean(axis=0)
    eye = 0.12 * np.stack([np.cos(np.linspace(np.pi, -np.pi, 6, endpoint=False)),
                           0.5 * np.sin(np.linspace(np.pi, -np.pi, 6, endpoint=False))], axis=1)
    face[36:42] = eye + [-0.5, -0.5]
    face[42:48] = eye + [0.5, -0.5]
    outer = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    face[48:60] = np.stack([width / 2 * np.cos(outer), 0.55 + (0.12 + opening / 2) * np.sin(-outer)], axis=1)
    inner = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    face[60:68] = np.stack([0.7 * width / 2 * np.cos(inner), 0.55 + opening / 2 * np.sin(-inner)], axis=1)
    return face


def _posed(face: np.ndarray, angle: float, scale: float, centre) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.asarray(centre) + scale * face @ np.array([[cos, sin], [-sin, cos]])


def _synthetic_frames(n: int, seed: int, noise_px: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        face = _upright_face(opening=rng.uniform(-0.01, 0.3), width=rng.uniform(0.8, 1.0))
        landmarks = _posed(face, rng.uniform(-0.2, 0.2), rng.uniform(40, 60), rng.uniform(110, 146, 2))
        frames.append(landmarks + noise_px * rng.standard_normal(landmarks.shape))
    return np.stack(frames)


def test_inner_lip_opening_of_the_synthetic_face_is_its_parameter():
    sizes = mouth_size(normalise_mouth(_posed(_upright_face(0.2, 0.9), 0.1, 50.0, (128, 128))))
    assert sizes[1] == pytest.approx(0.2 * np.sin(np.pi / 4) * 2 / 3 + 0.2 / 3, abs=1e-5)


def test_fit_recovers_a_jaw_that_moves_linearly_with_mouth_height():
    train = _synthetic_frames(300, seed=0, noise_px=0.3)
    found = np.ones(len(train), bool)
    train[5] = np.nan  # a frame without a face is skipped, not fatal
    found[5] = False
    jaw = fit_jaw(train, found)
    assert jaw.coefficients.shape == (3, 34)

    test = _synthetic_frames(100, seed=1, noise_px=0.3)
    errors = jaw_error(jaw, test, np.ones(len(test), bool))
    assert errors["n_frames"] == 100
    assert errors["with_regression_px"] < 0.6  # about the landmark noise
    assert errors["without_regression_px"] > 4 * errors["with_regression_px"]

    # The chin (point 8) drops in proportion to the opening: d(chin y)/dh = drop / (dh/d opening).
    dh_per_opening = (2 * np.sin(np.pi / 4) + 1) / 3
    chin_y_per_height = jaw.coefficients[1, 2 * 8 + 1]
    assert chin_y_per_height == pytest.approx(CHIN_DROP_PER_OPENING / dh_per_opening, rel=0.05)


def test_round_trip_through_plain_arrays():
    jaw = fit_jaw(_synthetic_frames(50, seed=2), np.ones(50, bool))
    arrays = jaw.to_arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in arrays.values())
    again = JawModel.from_arrays(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(getattr(again, name), array)
    with pytest.raises(ValueError, match="missing"):
        JawModel.from_arrays({"coefficients": arrays["coefficients"]})
    with pytest.raises(ValueError, match="shape"):
        JawModel(**{**arrays, "coefficients": np.zeros((2, 34))})


def test_correct_jaw_lowers_a_closed_template_jaw_for_an_open_mouth():
    jaw = fit_jaw(_synthetic_frames(200, seed=3), np.ones(200, bool))
    template = _posed(_upright_face(0.0), 0.15, 55.0, (120, 130))
    openings = np.array([0.0, 0.1, 0.25])
    truths = np.stack([_posed(_upright_face(o), 0.15, 55.0, (120, 130)) for o in openings])
    new_mouths = normalise_mouth(truths)

    corrected = correct_jaw(template, new_mouths, jaw)
    assert corrected.shape == (3, 68, 2) and corrected.dtype == np.float64
    # Mouth and jaw where a real face with that opening has them; the rest is the template's.
    np.testing.assert_allclose(corrected[:, 48:68], truths[:, 48:68], atol=1e-3)
    np.testing.assert_allclose(corrected[:, 0:17], truths[:, 0:17], atol=1e-3)
    np.testing.assert_array_equal(corrected[:, 17:48], np.broadcast_to(template[17:48], (3, 31, 2)))
    # The chin moves down the (tilted) face, more for a wider opening.
    chin_drop = normalise_jaw(corrected)[:, 8, 1] - normalise_jaw(template)[8, 1]
    assert chin_drop[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 < chin_drop[1] < chin_drop[2]

    # A template clip [T, 68, 2] works the same, frame by frame.
    clip = np.stack([template] * 3)
    np.testing.assert_allclose(correct_jaw(clip, new_mouths, jaw), corrected)
    with pytest.raises(ValueError):
        correct_jaw(clip[:2], new_mouths, jaw)
    with pytest.raises(ValueError, match="NaN"):
        correct_jaw(np.full((68, 2), np.nan), new_mouths, jaw)


def test_face_pose_of_the_corrected_face_is_the_template_pose():
    jaw = fit_jaw(_synthetic_frames(50, seed=4), np.ones(50, bool))
    template = _posed(_upright_face(0.0), -0.1, 45.0, (128, 128))
    corrected = correct_jaw(template, normalise_mouth(_synthetic_frames(4, seed=5)), jaw)
    pose, template_pose = face_pose(corrected), face_pose(template)
    np.testing.assert_allclose(pose.scale, template_pose.scale)
    np.testing.assert_allclose(pose.angle, template_pose.angle)


# ---- facial maps -------------------------------------------------------------------------------

SIZE = 256


def _template_landmarks(size: int = SIZE, opening: float = 0.1) -> np.ndarray:
    return _posed(_upright_face(opening), 0.05, 50.0 * size / SIZE, (size / 2, size / 2))


def test_map_shape_dtype_and_channel_names():
    facemap = facial_map(np.zeros((SIZE, SIZE), bool), _template_landmarks())
    assert facemap.shape == (len(CHANNELS), SIZE, SIZE) and facemap.dtype == np.uint8
    assert CHANNELS == ("edges", "contour", "eyes", "outer_lips", "inner_lips")
    assert all(facemap[i].any() for i in range(1, len(CHANNELS)))
    rgb = map_to_rgb(facemap)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8 and rgb.any()


def test_edges_inside_the_lower_face_are_removed_and_outside_kept():
    landmarks = _template_landmarks()
    edges = np.ones((SIZE, SIZE), bool)
    mask = lower_face_mask(landmarks, SIZE)
    facemap = facial_map(edges, landmarks)
    assert not facemap[0][mask].any()
    assert np.all(facemap[0][~mask] == 255)
    # The mask covers the mouth and chin, not the eyes or the corners of the crop.
    for point in (48, 54, 57, 62, 8):
        x, y = np.round(landmarks[point]).astype(int)
        assert mask[y, x]
    for point in (37, 44):
        x, y = np.round(landmarks[point]).astype(int)
        assert not mask[y, x]
    assert not mask[0, 0] and not mask[-1, -1]
    # The margin grows the mask.
    assert lower_face_mask(landmarks, SIZE, margin=0.3).sum() > mask.sum() > lower_face_mask(
        landmarks, SIZE, margin=0.0).sum()


def test_lips_are_drawn_where_their_landmarks_are():
    landmarks = _template_landmarks(opening=0.2)
    facemap = facial_map(np.zeros((SIZE, SIZE), bool), landmarks)
    outer, inner = facemap[CHANNELS.index("outer_lips")], facemap[CHANNELS.index("inner_lips")]
    for channel, points in ((outer, range(48, 60)), (inner, range(60, 68))):
        for point in points:
            x, y = np.round(landmarks[point]).astype(int)
            assert channel[y, x] > 100, point
    # Nothing far from the mouth: the eyes, the top of the crop.
    for channel in (outer, inner):
        assert not channel[: int(landmarks[27:36, 1].max()), :].any()
    eyes = facemap[CHANNELS.index("eyes")]
    x, y = np.round(landmarks[37]).astype(int)
    assert eyes[y, x] > 100 and not eyes[int(landmarks[57, 1]):, :].any()


def test_subpixel_shift_changes_the_antialiased_drawing():
    landmarks = _template_landmarks()
    before = facial_map(np.zeros((SIZE, SIZE), bool), landmarks)
    after = facial_map(np.zeros((SIZE, SIZE), bool), landmarks + [0.5, 0.0])
    lips = CHANNELS.index("outer_lips")
    assert not np.array_equal(before[lips], after[lips])
    # Ink is conserved to within anti-aliasing, i.e. it moved rather than appeared.
    assert float(after[lips].sum()) == pytest.approx(float(before[lips].sum()), rel=0.1)
    # Partly covered pixels: anti-aliasing is on.
    assert np.any((before[lips] > 0) & (before[lips] < 255))


def test_thickness_scales_with_size():
    assert line_thickness(256) == 1 and line_thickness(512) == 2 and line_thickness(128) == 1
    small = facial_map(np.zeros((256, 256), bool), _template_landmarks(256))
    large = facial_map(np.zeros((512, 512), bool), _template_landmarks(512))
    contour = CHANNELS.index("contour")
    # Twice the length and twice the thickness: about four times the ink (AA at thickness 1 is
    # a little thinner than 1 px, hence the upper bound); same thickness would give about two.
    ratio = large[contour].astype(float).sum() / small[contour].astype(float).sum()
    assert 3.0 < ratio < 6.0


def test_bad_inputs_raise():
    landmarks = _template_landmarks()
    with pytest.raises(ValueError, match="NaN"):
        facial_map(np.zeros((SIZE, SIZE), bool), np.full((68, 2), np.nan))
    with pytest.raises(ValueError):
        facial_map(np.zeros((SIZE, SIZE + 1), bool), landmarks)
    with pytest.raises(ValueError):
        facial_map(np.zeros((SIZE, SIZE), bool), landmarks[:60])
    with pytest.raises(ValueError):
        lower_face_mask(landmarks, SIZE, margin=-1.0)
