"""The lower-face renderer's parts on synthetic inputs: geometry, model, inputs, references,
losses against blur, the sharpness measure, saving and loading (fast; no recordings)."""

from __future__ import annotations

import math

import json

import cv2
import numpy as np
import pytest
import torch

from newsanchor.evaluate.image_metrics import laplacian_variance
from newsanchor.render.inputs import compose_region, lower_face_input, match_reference_colours, region_alpha, skin_band
from newsanchor.render.lower_face import LOWER_FACE_CONFIGS, FaceRegion, LowerFaceConfig, build_lower_face
from newsanchor.render.pix2pixhd import RendererError, build_renderer, is_lower_face, load_renderer, save_renderer
from newsanchor.render.references import (REFERENCES_FILE, ReferenceChooser, ReferenceMouths, align_reference, choose_bank,
                                          choose_candidates, load_reference_mouths, mouth_openness, mouth_shape, mouth_support,
                                          nearest_mouths, reference_chooser, similarity, teeth_score, thin_plate_spline,
                                          warp_reference)
from newsanchor.train.gan_losses import laplacian_loss, laplacian_pyramid

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def face(size: int = 256, open_px: float = 0.0) -> np.ndarray:
    """A plausible 68-point face [68, 2] in a crop of ``size`` (the dataset's framing), its inner
    lips ``open_px`` apart (at 256)."""
    s = size / 256
    jaw = [(62 + 132 * i / 16, 120 + 85 * np.sin(np.pi * i / 16) ** 0.8) for i in range(17)]
    brows = [(80 + 12 * i, 100) for i in range(5)] + [(140 + 12 * i, 100) for i in range(5)]
    nose = [(128, 110 + 10 * i) for i in range(4)] + [(116 + 6 * i, 155) for i in range(5)]
    eyes = [(90 + 8 * i, 118 + (i % 3 > 0) * 3) for i in range(6)] + [(146 + 8 * i, 118 + (i % 3 > 0) * 3) for i in range(6)]
    outer = [(105 + 46 * i / 6, 178 - 6 * np.sin(np.pi * i / 6)) for i in range(7)]
    outer += [(151 - 46 * i / 6, 178 + 8 * np.sin(np.pi * i / 6) + open_px) for i in range(1, 6)]
    inner = [(110, 178)] + [(128 + 10 * (i - 2), 176) for i in range(1, 4)] + [(146, 178)]
    inner += [(128 - 10 * (i - 2), 180 + open_px) for i in range(1, 4)]
    points = np.array(jaw + brows + nose + eyes + outer + inner, np.float64)
    assert points.shape == (68, 2)
    return points * s


def test_the_region_is_a_fixed_box_holding_the_lower_face_at_every_crop_size():
    config = LowerFaceConfig()
    assert config.region_box(256) == (32, 112, 192, 144)
    assert config.region_box(512) == (64, 224, 384, 288)
    for size in (64, 128, 256, 512):
        x0, y0, w, h = config.region_box(size)
        assert w % config.size_multiple == 0 and h % config.size_multiple == 0
        assert 0 <= x0 and x0 + w <= size and 0 <= y0 and y0 + h <= size
        points = face(size)
        assert x0 <= points[2:15, 0].min() and points[2:15, 0].max() <= x0 + w  # jaw to jaw
        assert y0 <= points[33, 1] and points[8, 1] <= y0 + h  # nose bottom to chin
    assert FaceRegion(0.9, 0.9, 0.5, 0.5).pixels(100) == (50, 50, 50, 50)  # kept inside the crop


def test_the_generator_maps_its_input_to_a_region_and_refuses_other_shapes():
    model, config = build_lower_face(LowerFaceConfig(ngf=4, n_downsampling=2, n_blocks=1, references=2))
    assert config.input_channels == 5 + 1 + 3 + 6
    out = model(torch.zeros(2, config.input_channels, 32, 48))
    assert out.shape == (2, 3, 32, 48) and float(out.detach().abs().max()) <= 1
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(1, 3, 32, 48))
    with pytest.raises(ValueError, match="not divisible"):
        model(torch.zeros(1, config.input_channels, 30, 48))
    ablated = LowerFaceConfig(masked_frame=False, references=0)
    assert ablated.input_channels == 6
    with pytest.raises(ValueError, match="inside the crop"):
        LowerFaceConfig(region=(0.5, 0.5, 0.8, 0.2))


def test_the_input_masks_the_frame_where_the_renderer_paints_and_composes_back():
    size = 256
    config = LowerFaceConfig()
    box = config.region_box(size)
    x0, y0, w, h = box
    points = face(size)
    alpha = region_alpha(points, box)
    assert alpha.shape == (h, w) and alpha.max() == pytest.approx(1, abs=1e-3)
    assert alpha[0].max() == 0 and alpha[:, 0].max() == 0  # zero on the region's border
    mouth = np.round(points[62] - (x0, y0)).astype(int)
    assert alpha[mouth[1], mouth[0]] > 0.97
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    references = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    edges = np.zeros((size, size), bool)
    x = lower_face_input(edges, points, frame, alpha, references, box)
    assert x.shape == (config.input_channels, h, w) and x.dtype == np.float32
    masked = x[6:9]
    assert np.all(masked[:, mouth[1], mouth[0]] < -0.9)  # the mouth is blanked
    assert np.allclose(masked[:, 2, 2], frame[2, 2] / 127.5 - 1, atol=1e-5)  # the rest is the frame
    assert np.allclose(x[9:12], references[0].transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)
    rendered = np.full((h, w, 3), 7, np.uint8)
    composed = compose_region(frame, rendered, alpha)
    assert np.array_equal(composed[0], frame[0]) and np.all(np.abs(composed[mouth[1], mouth[0]].astype(int) - 7) <= 5)
    ablated = lower_face_input(edges, points, frame, alpha, references[:0], box, masked_frame=False)
    assert ablated.shape == (6, h, w)


def test_a_similarity_is_recovered_exactly_and_aligns_a_reference_by_eyes_and_nose():
    points = face()
    angle, scale, shift = 0.1, 1.2, np.array([5.0, -3.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ rotation.T + shift
    np.testing.assert_allclose(similarity(points, moved), np.hstack([rotation, shift[:, None]]), atol=1e-9)
    # a reference drawn at another pose lands on the target's pose
    crop = np.zeros((256, 256, 3), np.uint8)
    for p in moved[36:48]:
        cv2.circle(crop, tuple(np.round(p).astype(int)), 2, (255, 255, 255), -1)
    box = (0, 0, 256, 256)
    aligned = align_reference(crop, moved, points, box)
    eye = np.round(points[36:42].mean(0)).astype(int)
    assert aligned[eye[1] - 3:eye[1] + 4, eye[0] - 25:eye[0] + 26].max() == 255


def test_a_bicubic_warp_keeps_the_fine_detail_a_bilinear_one_loses():
    """Stubble-like noise moved by half a pixel: bilinear resampling averages neighbours and keeps
    about half its Laplacian variance, bicubic most of it; on the default preset only."""
    rng = np.random.default_rng(0)
    crop = np.clip(128 + 40 * rng.standard_normal((256, 256, 1)), 0, 255).astype(np.uint8).repeat(3, -1)
    points = face()
    shifted = points + 0.5
    box = (64, 112, 128, 96)
    detail = {resample: laplacian_variance(align_reference(crop, shifted, points, box, resample), (0, 0, 128, 96))
              for resample in ("linear", "cubic")}
    original = laplacian_variance(crop[112:208, 64:192], (0, 0, 128, 96))
    assert detail["linear"] < 0.5 * original and detail["cubic"] > 1.4 * detail["linear"]
    bent = warp_reference(crop, shifted, points, box, "mouth", "cubic")
    assert laplacian_variance(bent, (0, 0, 128, 96)) > 1.4 * laplacian_variance(
        warp_reference(crop, shifted, points, box, "mouth", "linear"), (0, 0, 128, 96))
    with pytest.raises(ValueError, match="resample must be one of"):
        warp_reference(crop, shifted, points, box, "mouth", "nearest")
    with pytest.raises(ValueError, match="reference_resample must be one of"):
        LowerFaceConfig(reference_resample="lanczos")
    assert LOWER_FACE_CONFIGS["lower-face-bank"].reference_resample == "cubic"
    assert LOWER_FACE_CONFIGS["lower-face"].reference_resample == "linear"


def test_openness_and_candidates_pick_closed_half_and_widest_mouths():
    faces = np.stack([face(open_px=o) for o in np.linspace(0, 30, 31)])
    openness = mouth_openness(faces)
    assert np.all(np.diff(openness) > 0) and openness[0] == pytest.approx(4 / 56)  # 4 px gap, eye centres 56 px apart
    openness[5] = np.nan  # a frame without a face is never chosen
    closed, half, wide = choose_candidates(openness, pool=3)
    assert closed[0] in (0, 1) and 5 not in closed and wide[0] == 30 and 15 <= half[0] <= 27
    with pytest.raises(ValueError):
        choose_candidates(np.full(3, np.nan))


def test_the_laplacian_loss_is_zero_for_equal_images_and_punishes_blur_more_than_l1():
    rng = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 48, generator=rng) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, 1, 1, count_include_pad=False)
    assert float(laplacian_loss(sharp, sharp)) == 0
    bands = laplacian_pyramid(sharp, 3)
    assert [b.shape[-1] for b in bands] == [48, 24, 12, 6]
    # a flat image has no band-pass content
    assert float(laplacian_pyramid(torch.ones(1, 1, 16, 16), 2)[0].abs().max()) < 1e-6
    weight = torch.ones(2, 1, 32, 48)
    weight[..., :16, :] = 3
    assert float(laplacian_loss(blurred, sharp, weight)) > float(laplacian_loss(blurred, sharp))


def test_laplacian_variance_has_the_known_answer_and_ignores_the_box_size():
    flat = np.full((64, 96, 3), 128, np.uint8)
    assert laplacian_variance(flat, (0, 0, 96, 64)) == 0
    stripes = np.zeros((64, 96, 3), np.uint8)
    stripes[:, ::2] = 255  # luma alternates 0/255 column by column: Laplacian ±510 everywhere inside
    value = laplacian_variance(stripes, (0, 0, 96, 64))
    assert value == pytest.approx(510 ** 2, rel=0.05)
    blurred = cv2.GaussianBlur(stripes, (5, 5), 1.5)
    assert laplacian_variance(blurred, (0, 0, 96, 64)) < 0.05 * value
    assert np.isnan(laplacian_variance(flat, (0, 0, 2, 2)))


def test_a_lower_face_renderer_saves_and_loads_beside_its_references(tmp_path):
    model, config = build_lower_face(LowerFaceConfig(ngf=4, n_downsampling=2, n_blocks=1))
    save_renderer(tmp_path, model, config, {"input": {"edges": True}})
    assert json.loads((tmp_path / "renderer.json").read_text())["architecture"] == "lower-face"
    loaded, loaded_config, _ = load_renderer(tmp_path)
    assert is_lower_face(loaded_config) and loaded_config == config
    # a renderer saved before references could be read bicubically reads them as it was trained: bilinearly
    meta = json.loads((tmp_path / "renderer.json").read_text())
    meta["config"].pop("reference_resample")
    (tmp_path / "renderer.json").write_text(json.dumps(meta))
    assert load_renderer(tmp_path)[1].reference_resample == "linear"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(RendererError, match="references.npz: missing"):
        load_reference_mouths(tmp_path)
    references = ReferenceMouths(np.zeros((3, 64, 64, 3), np.uint8), np.stack([face(64)] * 3).astype(np.float32),
                                 ("closed", "half", "open"), np.array([0.0, 0.1, 0.3], np.float32))
    np.savez(tmp_path / REFERENCES_FILE, **references.to_arrays())
    again = load_reference_mouths(tmp_path)
    assert again.states == ("closed", "half", "open") and again.aligned(face(64), (8, 28, 48, 32)).shape == (3, 32, 48, 3)
    # a renderer saved before the lower-face renderer existed (no architecture) is pix2pixHD
    old, old_config = build_renderer("light-256", appearance_channels=3, ngf=4, n_downsampling=2, n_blocks=1)
    save_renderer(tmp_path / "old", old, old_config)
    meta = json.loads((tmp_path / "old" / "renderer.json").read_text())
    assert "architecture" not in meta and not is_lower_face(load_renderer(tmp_path / "old")[1])
    meta["architecture"] = "hologram"
    (tmp_path / "old" / "renderer.json").write_text(json.dumps(meta))
    with pytest.raises(RendererError, match="unknown renderer architecture 'hologram'"):
        load_renderer(tmp_path / "old")


def test_teeth_are_told_from_a_dark_mouth_by_the_lips_around_them():
    points = face(open_px=20)
    crop = np.full((256, 256, 3), (200, 160, 140), np.uint8)  # skin
    cv2.fillPoly(crop, [np.round(points[48:60]).astype(np.int32)], (170, 60, 60))  # red lips
    inner = [np.round(points[60:68]).astype(np.int32)]
    dark, teeth = crop.copy(), crop.copy()
    cv2.fillPoly(dark, inner, (30, 10, 10))
    cv2.fillPoly(teeth, inner, (215, 210, 190))  # greyish-white, less saturated than the lips
    assert teeth_score(teeth, points) > 0.8 and teeth_score(dark, points) < 0.05
    assert teeth_score(teeth, face(open_px=0)) < 0.5  # barely any inside when closed


def test_the_bank_covers_every_mouth_shape_and_a_frame_reads_the_nearest_whatever_the_head_pose():
    openings = np.linspace(0, 30, 61)
    faces = np.stack([face(open_px=o) for o in openings])
    shapes = mouth_shape(faces)
    assert shapes.shape == (61, 40)
    # the same mouth on a head moved, scaled and turned has the same shape
    turn = np.deg2rad(8)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    moved = faces[20] @ rotation.T * 1.3 + (7.0, -11.0)
    np.testing.assert_allclose(mouth_shape(moved), shapes[20], atol=1e-5)
    shapes[3] = np.nan  # a frame without a face is never chosen
    bank = choose_bank(shapes, 6)
    assert len(bank) == 6 and 3 not in bank
    assert np.all(np.diff(openings[bank]) > 0) and openings[bank][0] < 5 and openings[bank][-1] > 25  # closed → open
    nearest = nearest_mouths(shapes[bank], mouth_shape(face(open_px=openings[bank][2] + 0.2)), 3)
    assert nearest[0] == 2 and set(nearest) <= {1, 2, 3}
    # a frame's own moment is left out where it may not be read
    allowed = np.ones(len(bank), bool)
    allowed[2] = False
    assert nearest_mouths(shapes[bank], shapes[bank[2]], 1, allowed)[0] in (1, 3)
    # a bank larger than the frame's references gives the nearest, nearest first
    crops = np.zeros((len(bank), 256, 256, 3), np.uint8)
    for k in range(len(bank)):
        crops[k] = 40 * k
    mouths = ReferenceMouths(crops, faces[bank].astype(np.float32), ("bank",) * len(bank), mouth_openness(faces[bank]))
    aligned = mouths.aligned(faces[bank[4]], (32, 112, 192, 144), "mouth", 2)
    assert aligned.shape == (2, 144, 192, 3) and aligned[0].mean() == pytest.approx(160, abs=1)
    assert mouths.aligned(faces[0], (32, 112, 192, 144), "head").shape[0] == len(bank)  # no count: all, as stored


def test_frames_in_order_keep_their_bank_references_while_the_mouth_wavers_between_two_shapes():
    openings = np.array([0.0, 8.0, 16.0, 24.0])
    faces = np.stack([face(open_px=o) for o in openings])
    mouths = ReferenceMouths(np.zeros((4, 256, 256, 3), np.uint8), faces.astype(np.float32), ("bank",) * 4,
                             mouth_openness(faces))
    # a mouth wavering about halfway between the bank's 8 and 16 px, then opening wide
    path = [12 + 0.4 * (-1) ** t for t in range(20)] + [23.0] * 3
    targets = [face(open_px=o) for o in path]

    def picks(hold: float) -> list[int]:
        chooser = ReferenceChooser(mouths, 1, hold)
        return [int(chooser(t)[0]) for t in targets]

    fresh, held = picks(0.0), picks(0.3)
    assert fresh[:20] == [2, 1] * 10  # the nearest: another reference every frame
    assert len(set(held[:20])) == 1  # held: one reference while neither is clearly nearer
    assert fresh[-3:] == held[-3:] == [3, 3, 3]  # and the nearest once the mouth has clearly moved
    with pytest.raises(ValueError, match="hold"):
        ReferenceChooser(mouths, 1, -0.1)
    nearest = LowerFaceConfig(reference_choice="nearest", references=2, bank_size=4, reference_hold=0.2)
    chooser = reference_chooser(nearest, mouths)
    assert chooser is not None and chooser.count == 2 and chooser.hold == 0.2
    assert chooser.aligned(targets[0], (32, 112, 192, 144), "mouth").shape == (2, 144, 192, 3)
    assert reference_chooser(LowerFaceConfig(), mouths) is None  # the stored states, all of them, in order
    with pytest.raises(ValueError, match="reference_hold"):
        LowerFaceConfig(reference_hold=-1)


def test_the_mouth_warp_carries_the_reference_lips_onto_the_target_lips():
    target = face(open_px=16)
    reference = face(open_px=2) * 1.05 + (4.0, -3.0)  # another pose, mouth nearly closed
    control = np.random.default_rng(0).uniform(0, 100, (12, 2))
    moved = control + np.random.default_rng(1).uniform(-5, 5, (12, 2))
    np.testing.assert_allclose(thin_plate_spline(control, moved, control, smoothing=0), moved, atol=1e-8)
    crop = np.zeros((256, 256, 3), np.uint8)
    lower_lip = np.round(reference[57]).astype(int)  # bottom of the outer lower lip
    cv2.circle(crop, tuple(lower_lip), 3, (255, 255, 255), -1)
    box = (32, 112, 192, 144)
    for warp, expected in (("mouth", target[57]), ("head", None)):
        warped = warp_reference(crop, reference, target, box, warp)
        ys, xs = np.nonzero(warped[..., 0] > 128)
        centre = np.array([xs.mean(), ys.mean()]) + box[:2]
        if expected is not None:  # the lip lands where the target's lip is (16 px lower than closed)
            assert np.linalg.norm(centre - expected) < 2.5
        else:  # the head alignment alone leaves it near the closed position
            assert np.linalg.norm(centre - target[57]) > 8
    with pytest.raises(ValueError, match="warp must be"):
        warp_reference(crop, reference, target, box, "face")


def test_references_take_the_frames_colours_from_the_skin_around_the_mask_not_from_the_collar():
    box = (32, 112, 192, 144)
    x0, y0, w, h = box
    points = face()
    alpha = region_alpha(points, box)
    band = skin_band(points, alpha, box)
    assert band.shape == (h, w) and band.max() > 0.2
    chin = np.round(points[8] - (x0, y0)).astype(int)
    assert band[chin[1] + 8:].sum() == 0  # nothing below the chin: neck and collar never count
    rng = np.random.default_rng(1)
    texture = rng.normal(0, 12, (h, w, 1))
    # the frame: warm skin in this light, a white collar below the chin; the reference: the same
    # skin texture, darker and bluer (another session), over a dark collar
    frame = np.clip(np.array([180, 130, 110]) + texture, 0, 255).astype(np.uint8)
    reference = np.clip(np.array([120, 100, 110]) + 0.6 * texture, 0, 255).astype(np.uint8)
    frame[chin[1] + 8:], reference[chin[1] + 8:] = 250, 20
    matched = match_reference_colours(reference[None], frame, alpha, points, box)
    assert matched.shape == (1, h, w, 3) and matched.dtype == np.uint8
    skin = band > 0
    assert np.abs(matched[0][skin].mean(0) - frame[skin].mean(0)).max() < 3  # colour moved to the frame's
    assert abs(matched[0][skin].std() - frame[skin].std()) < 3  # and the texture's contrast too
    assert matched[0][chin[1] + 8:].mean() < 60  # the reference's collar was not what it matched
    edges = np.zeros((256, 256), bool)
    inputs = lower_face_input(edges, points, frame, alpha, reference[None], box, match_colours=True)
    assert np.allclose(inputs[-3:], matched[0].transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)
    # skin of the same hue, its redness twice as varied in the frame: grey teeth stay grey (a
    # gain on the hue's spread would push them past grey, into green)
    tx, ty = np.round(points[62] - (x0, y0)).astype(int)
    teeth = (slice(ty - 2, ty + 3), slice(tx - 6, tx + 6))
    redness = texture * np.array([1.0, -0.5, -0.5])
    ruddy = np.clip(np.array([150, 110, 95]) + 2 * redness, 0, 255).astype(np.uint8)
    plain = np.clip(np.array([150, 110, 95]) + redness, 0, 255).astype(np.uint8)
    plain[teeth] = 170
    r, g, b = match_reference_colours(plain[None], ruddy, alpha, points, box)[0][teeth].reshape(-1, 3).mean(0)
    assert abs(r - g) < 3 and abs(g - b) < 3
    # a mouth-only reference (black outside its mouth and chin) is measured on its chin and
    # cheeks, and stays black where it was
    support = mouth_support(points, box)
    only = (reference * support[..., None]).round().astype(np.uint8)
    matched = match_reference_colours(only[None], frame, alpha, points, box, "mouth-only")[0]
    inside = support > 0.9
    assert np.abs(matched[inside].mean(0) - frame[inside].mean(0)).max() < 3
    assert matched[support < 0.01].max() == 0
    # a face that leaves no skin in the region to measure: the references are left as they are
    nowhere = np.zeros_like(alpha)
    assert np.array_equal(match_reference_colours(reference[None], frame, nowhere, points, box), reference[None])


def test_a_mouth_only_reference_keeps_the_mouth_and_chin_and_drops_neck_and_cheeks_a_face_only_one_keeps_the_cheeks():
    target = face(open_px=10)
    crop = np.full((256, 256, 3), 200, np.uint8)
    box = (32, 112, 192, 144)
    kept = warp_reference(crop, target, target, box, "mouth-only")
    x0, y0 = box[:2]
    at = lambda point: kept[int(round(point[1])) - y0, int(round(point[0])) - x0, 0]  # noqa: E731
    assert at(target[51]) == 200 and at(target[57]) > 180  # the lips (the lower one 9 px above this chin: feathered a little)
    assert at((target[8][0], target[8][1] - 10)) > 150  # the chin, inside the jaw
    assert at((target[8][0], target[8][1] + 12)) < 20  # the neck below it
    assert at((target[1][0] + 2, target[1][1])) < 20  # the cheek beside the upper jaw
    assert kept.shape == (144, 192, 3) and kept.dtype == np.uint8
    # face-only keeps that cheek and the whole jaw line too, and still drops the neck
    kept = warp_reference(crop, target, target, box, "face-only")
    assert at((target[1][0] + 12, target[1][1])) > 180 and at(target[51]) == 200
    assert at((target[8][0], target[8][1] + 12)) < 20


def test_the_blend_head_mixes_its_colour_with_the_references_per_pixel():
    model, config = build_lower_face(LowerFaceConfig(ngf=4, n_downsampling=2, n_blocks=1, references=2, head="blend"))
    x = torch.rand(1, config.input_channels, 32, 48) * 2 - 1
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -20.0, -20.0, 20.0]))  # all weight on reference 2
        np.testing.assert_allclose(model(x).numpy(), x[:, -3:].numpy(), atol=1e-6)
        model.out.bias.copy_(torch.tensor([0.5, 0.5, 0.5, 20.0, -20.0, -20.0]))  # all on its own colour
        np.testing.assert_allclose(model(x).numpy(), np.tanh(0.5), atol=1e-6)
    with pytest.raises(ValueError, match="needs reference mouths"):
        LowerFaceConfig(head="blend", references=0)


def test_the_blend_head_starts_from_the_references_and_shows_its_logits_to_the_trainer():
    model, config = build_lower_face(LowerFaceConfig(ngf=4, n_downsampling=2, n_blocks=1, references=3, head="blend"))
    x = torch.rand(2, config.input_channels, 32, 48) * 2 - 1
    model.train()
    out = model(x)
    logits = model.blend_logits  # [B, K+1, h, w], what train.lower_face penalises
    assert logits.shape == (2, 4, 32, 48) and logits.requires_grad
    weights = torch.softmax(logits, 1)
    # the same mix at every pixel at the start: mostly the references, a tenth the painted colour
    torch.testing.assert_close(weights[:, 0], torch.full_like(weights[:, 0], math.exp(-1) / (math.exp(-1) + 3)))
    out.mean().backward()
    assert model.out.weight.grad[3:].abs().sum() > 0  # the mix is trainable from the first step
    model.eval()
    with torch.no_grad():
        model(x)
    assert model.blend_logits is None
