"""Mouth normalisation (nose centre, eye line, inter-ocular distance), its inverse, and PCA."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.decomposition import PCA

from newsanchor.features.mouth import (
    LEFT_EYE,
    MOUTH,
    NOSE,
    RIGHT_EYE,
    FacePose,
    MouthPCA,
    denormalise_mouth,
    face_pose,
    fit_mouth_pca,
    mouth_size,
    normalise_mouth,
)


def canonical_face(rng: np.random.Generator, mouth_jitter: float = 0.05) -> np.ndarray:
    """A [68, 2] face already in normalised coordinates: nose centre at the origin, eye
    centres at (-0.5, 0) and (0.5, 0) (IOD 1, level), mouth about one IOD below the nose."""
    face = rng.normal(0, 0.3, (68, 2))  # jaw and brows: irrelevant to the pose, any values
    sixths = np.arange(6) * np.pi / 3
    hexagon = 0.1 * np.stack([np.cos(sixths), 0.5 * np.sin(sixths)], -1)  # centroid exactly 0
    face[LEFT_EYE] = hexagon + [-0.5, 0.0]
    face[RIGHT_EYE] = hexagon + [0.5, 0.0]
    nose = rng.normal(0, 0.1, (9, 2))
    face[NOSE] = nose - nose.mean(axis=0)
    angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    lips = np.stack([0.4 * np.cos(angles), 0.9 + 0.15 * np.sin(angles)], -1)
    face[MOUTH] = lips + rng.normal(0, mouth_jitter, (20, 2))
    return face


def place(face: np.ndarray, angle: float, scale: float, shift) -> np.ndarray:
    """shift + scale * R(angle) @ p for every landmark."""
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(shift) + scale * face @ np.array([[c, -s], [s, c]]).T


def random_placement(rng: np.random.Generator):
    return rng.uniform(-np.radians(40), np.radians(40)), rng.uniform(20, 800), rng.uniform(0, 4000, 2)


def test_pose_of_a_placed_canonical_face():
    face = canonical_face(np.random.default_rng(0))
    pose = face_pose(place(face, 0.3, 250.0, [1000.0, 600.0]))
    np.testing.assert_allclose(pose.centre, [1000.0, 600.0], atol=1e-9)
    np.testing.assert_allclose(pose.angle, 0.3, atol=1e-12)
    np.testing.assert_allclose(pose.scale, 250.0, rtol=1e-12)


def test_canonical_face_normalises_to_its_own_mouth():
    face = canonical_face(np.random.default_rng(1))
    normalised = normalise_mouth(face)
    assert normalised.shape == (20, 2) and normalised.dtype == np.float32
    np.testing.assert_allclose(normalised, face[MOUTH], atol=1e-6)


def test_round_trip_is_exact_to_1e4_px_for_random_placements():
    rng = np.random.default_rng(2)
    for _ in range(200):
        landmarks = place(canonical_face(rng), *random_placement(rng))
        pose = face_pose(landmarks)
        restored = denormalise_mouth(normalise_mouth(landmarks), pose)
        assert np.abs(restored - landmarks[MOUTH]).max() <= 1e-4


def test_normalisation_ignores_where_and_how_the_face_sits():
    rng = np.random.default_rng(3)
    for _ in range(50):
        face = place(canonical_face(rng), *random_placement(rng))
        moved = place(face, *random_placement(rng))
        np.testing.assert_allclose(normalise_mouth(moved), normalise_mouth(face), atol=1e-5)


def test_mouth_transplanted_onto_a_template_lands_at_its_geometry():
    rng = np.random.default_rng(4)
    speaker_canonical = canonical_face(rng)
    speaker = place(speaker_canonical, 0.2, 120.0, [300.0, 200.0])
    angle, scale, shift = -0.5, 400.0, np.array([2000.0, 1500.0])
    template = place(canonical_face(rng), angle, scale, shift)

    transplanted = denormalise_mouth(normalise_mouth(speaker), face_pose(template))

    # The speaker's mouth in canonical coordinates, placed the way the template face is placed.
    np.testing.assert_allclose(transplanted, place(speaker_canonical[MOUTH], angle, scale, shift), atol=1e-4)
    # A point one IOD below the nose ends up one template IOD "below" the template nose.
    one_below = denormalise_mouth(np.tile([[0.0, 1.0]], (20, 1)), face_pose(template))[0]
    down_the_template_face = np.array([-np.sin(angle), np.cos(angle)])
    np.testing.assert_allclose(one_below, shift + scale * down_the_template_face, atol=1e-9)


def test_batch_shapes_match_per_face_results():
    rng = np.random.default_rng(5)
    faces = np.stack(
        [[place(canonical_face(rng), *random_placement(rng)) for _ in range(4)] for _ in range(3)]
    )  # [B=3, T=4, 68, 2]
    batched = normalise_mouth(faces)
    assert batched.shape == (3, 4, 20, 2)
    for b in range(3):
        np.testing.assert_array_equal(normalise_mouth(faces[b]), batched[b])  # [T, 68, 2] path
        for t in range(4):
            np.testing.assert_allclose(normalise_mouth(faces[b, t]), batched[b, t], atol=1e-7)
    poses = face_pose(faces)
    assert poses.centre.shape == (3, 4, 2) and poses.angle.shape == (3, 4) and poses.scale.shape == (3, 4)
    np.testing.assert_allclose(denormalise_mouth(batched, poses), faces[..., MOUTH, :], atol=1e-4)


def test_single_template_pose_broadcasts_over_a_sequence():
    rng = np.random.default_rng(6)
    mouths = np.stack([normalise_mouth(canonical_face(rng)) for _ in range(7)])  # [T, 20, 2]
    template_pose = face_pose(place(canonical_face(rng), 0.1, 90.0, [256.0, 256.0]))
    assert template_pose.batch_shape == ()
    placed = denormalise_mouth(mouths, template_pose)
    assert placed.shape == (7, 20, 2) and placed.dtype == np.float64
    for t in range(7):
        np.testing.assert_array_equal(placed[t], denormalise_mouth(mouths[t], template_pose))
    with pytest.raises(ValueError, match="broadcast"):
        denormalise_mouth(mouths, face_pose(np.stack([place(canonical_face(rng), 0, 50, [0, 0])] * 3)))


def test_degenerate_and_malformed_input_is_rejected():
    face = canonical_face(np.random.default_rng(7))
    face[LEFT_EYE] = face[RIGHT_EYE]
    with pytest.raises(ValueError, match="inter-ocular"):
        normalise_mouth(face)
    with pytest.raises(ValueError, match=r"\[\.\.\., 68, 2\]"):
        normalise_mouth(np.zeros((5, 2)))
    with pytest.raises(ValueError):
        FacePose(centre=np.zeros((3, 2)), angle=np.zeros(3), scale=np.ones(4))


def hand_built_mouth() -> np.ndarray:
    """Upright mouth: corners 0.8 apart; inner lips 0.10, 0.14, 0.10 apart; outer lips and
    the inner corners (60, 64) placed so that using them instead would change the height."""
    mouth = np.zeros((20, 2))
    mouth[0] = [-0.4, 1.0]  # 48 left corner
    mouth[6] = [0.4, 1.0]  # 54 right corner
    mouth[1:6, 1] = 0.7  # 49-53 outer upper lip
    mouth[7:12, 1] = 1.4  # 55-59 outer lower lip
    mouth[12] = [-0.3, 1.0]  # 60 inner corner
    mouth[16] = [0.3, 1.3]  # 64 inner corner (deliberately off)
    mouth[13:16] = [[-0.1, 0.95], [0.0, 0.93], [0.1, 0.95]]  # 61, 62, 63 inner upper
    mouth[17:20] = [[0.1, 1.05], [0.0, 1.07], [-0.1, 1.05]]  # 65, 66, 67 inner lower
    return mouth


def test_mouth_size_of_a_hand_built_mouth():
    width, height = mouth_size(hand_built_mouth())
    assert width == pytest.approx(0.8, abs=1e-6)
    assert height == pytest.approx((0.10 + 0.14 + 0.10) / 3, abs=1e-6)


def test_mouth_size_is_signed_and_batched():
    closed = hand_built_mouth()
    closed[17:20, 1] = closed[13:16, 1] - 0.01  # lower inner lip drawn 0.01 above the upper
    sizes = mouth_size(np.stack([[hand_built_mouth(), closed]] * 3))
    assert sizes.shape == (3, 2, 2) and sizes.dtype == np.float32
    assert sizes[0, 1, 1] == pytest.approx(-0.01, abs=1e-6)
    # Scaling a mouth scales both measures (no hidden offsets).
    scaled = mouth_size(2.5 * hand_built_mouth())
    np.testing.assert_allclose(scaled, 2.5 * mouth_size(hand_built_mouth()), rtol=1e-6)


def mouths_with_dof(rng: np.random.Generator, n: int, dof: int) -> np.ndarray:
    base = canonical_face(rng, mouth_jitter=0.0)[MOUTH].reshape(40)
    directions = rng.normal(0, 0.05, (dof, 40))
    return (base + rng.normal(0, 1, (n, dof)) @ directions).reshape(n, 20, 2)


def test_pca_reconstructs_data_with_exactly_k_degrees_of_freedom():
    mouths = mouths_with_dof(np.random.default_rng(8), 200, 10)
    pca = fit_mouth_pca(mouths, n_components=10)
    coeffs = pca.transform(mouths)
    assert coeffs.shape == (200, 10) and coeffs.dtype == np.float32
    restored = pca.inverse(coeffs)
    assert restored.shape == (200, 20, 2) and restored.dtype == np.float32
    np.testing.assert_allclose(restored, mouths, atol=1e-5)
    assert pca.total_explained_variance == pytest.approx(1.0, abs=1e-9)


def test_pca_matches_sklearn_on_richer_data():
    rng = np.random.default_rng(9)
    mouths = mouths_with_dof(rng, 300, 25) + rng.normal(0, 1e-3, (300, 20, 2))
    pca = fit_mouth_pca(mouths, n_components=10)
    reference = PCA(n_components=10, svd_solver="full").fit(mouths.reshape(300, 40))
    np.testing.assert_allclose(pca.transform(mouths), reference.transform(mouths.reshape(300, 40)), atol=1e-5)
    np.testing.assert_allclose(
        pca.inverse(pca.transform(mouths)).reshape(300, 40),
        reference.inverse_transform(reference.transform(mouths.reshape(300, 40))),
        atol=1e-5,
    )
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(10), atol=1e-10)
    assert 0.3 < pca.total_explained_variance < 0.999
    assert np.all(np.diff(pca.explained_variance) <= 0)


def test_pca_batches_over_leading_axes():
    rng = np.random.default_rng(10)
    pca = fit_mouth_pca(mouths_with_dof(rng, 50, 12), n_components=4)
    batch = mouths_with_dof(rng, 6, 12).reshape(2, 3, 20, 2)
    coeffs = pca.transform(batch)
    assert coeffs.shape == (2, 3, 4)
    np.testing.assert_array_equal(coeffs[1, 2], pca.transform(batch[1, 2]))
    assert pca.inverse(coeffs).shape == (2, 3, 20, 2)


def test_pca_survives_npz_round_trip():
    pca = fit_mouth_pca(mouths_with_dof(np.random.default_rng(11), 40, 15), n_components=5)
    buffer = io.BytesIO()
    np.savez(buffer, **pca.to_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        restored = MouthPCA.from_arrays(dict(stored))
    for name, array in pca.to_arrays().items():
        np.testing.assert_array_equal(getattr(restored, name), array)
    with pytest.raises(ValueError, match="missing components"):
        MouthPCA.from_arrays({k: v for k, v in pca.to_arrays().items() if k != "components"})


def test_pca_needs_more_mouths_than_components():
    mouths = mouths_with_dof(np.random.default_rng(12), 10, 10)
    with pytest.raises(ValueError, match="10 mouths are too few for 10 components"):
        fit_mouth_pca(mouths, n_components=10)
    assert fit_mouth_pca(np.concatenate([mouths, mouths[:1] + 0.01]), n_components=10).n_components == 10
    with pytest.raises(ValueError, match="NaN"):
        fit_mouth_pca(np.full((20, 20, 2), np.nan), n_components=3)
