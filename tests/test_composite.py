"""Compositing (newsanchor.composite): paste-back without seams, colour matching, on-screen
labels, chroma key — mostly on synthetic frames, plus one real face."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
from conftest import missing_dependency

from newsanchor.composite import (POSITIONS, DisclosureConfig, apply_disclosure, blend_mask, chroma_key_mask,
                                  disclosure_rect, draw_disclosure_label, draw_lower_third, fit_background,
                                  label_rect, lower_third_rect, match_colour, paste_back, replace_background,
                                  suppress_spill)
from newsanchor.composite.paste import DEFAULT_FEATHER, IOD_PER_SIDE, _RGB_TO_YCC
from newsanchor.features.crop import CropBox, choose_crop_box, crop_frame, to_crop_coords
from newsanchor.media.streams import MP4_TAGS


def _face_landmarks(size: int) -> np.ndarray:
    """A crude frontal 68-point face laid out like the dataset's crops (IOD ≈ 0.22 × size, nose
    bottom ≈ 0.6, chin ≈ 0.8 of the side)."""
    iod, cx, cy = 0.22 * size, 0.5 * size, 0.52 * size

    def curve(n, x0, y0, rx, ry, start=0.0, stop=2 * np.pi, endpoint=False):
        t = np.linspace(start, stop, n, endpoint=endpoint)
        return np.stack([cx + (x0 + rx * np.cos(t)) * iod, cy + (y0 + ry * np.sin(t)) * iod], 1)

    def line(n, x0, x1, y0, y1):
        return np.stack([cx + np.linspace(x0, x1, n) * iod, cy + np.linspace(y0, y1, n) * iod], 1)

    parts = [curve(17, 0, -0.2, 1.0, 1.25, np.pi, 0.0, True),  # jaw, ear to ear under the chin
             line(5, -0.8, -0.2, -0.75, -0.75), line(5, 0.2, 0.8, -0.75, -0.75),  # brows
             line(4, 0, 0, -0.5, 0.2), line(5, -0.2, 0.2, 0.3, 0.3),  # nose bridge, nose bottom
             curve(6, -0.5, -0.5, 0.15, 0.05), curve(6, 0.5, -0.5, 0.15, 0.05),  # eyes
             curve(12, 0, 0.6, 0.4, 0.15), curve(8, 0, 0.6, 0.3, 0.05)]  # lips
    return np.concatenate(parts).astype(np.float32)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour texture [h, w, 3] uint8 (a stand-in for a photo)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 215, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=2)


# ---------------------------------------------------------------- paste_back


@pytest.mark.parametrize("with_landmarks", [True, False])
def test_pasting_the_frames_own_crop_changes_nothing(with_landmarks):
    frame = np.random.default_rng(1).integers(0, 256, (360, 640, 3), dtype=np.uint8)  # noise: any seam shows
    box = CropBox(200, 60, 256)
    face = crop_frame(frame, box, 256)
    before = frame.copy()
    out = paste_back(frame, face, box, _face_landmarks(256) if with_landmarks else None)
    assert np.array_equal(frame, before)  # input untouched
    assert np.abs(out.astype(int) - frame).max() <= 1


def test_pasting_a_resized_crop_of_a_smooth_frame_changes_at_most_one_level():
    yy, xx = np.mgrid[0:360, 0:640].astype(np.float32)
    frame = np.stack([40 + 0.25 * xx, 30 + 0.5 * yy, 200 - 0.2 * xx], axis=2).astype(np.uint8)
    box = CropBox(150, 20, 300)
    face = crop_frame(frame, box, 256)  # 300 → 256 and back 256 → 300
    out = paste_back(frame, face, box, to_crop_coords(_face_landmarks(300) + (150, 20), box, 256))
    assert np.abs(out.astype(int) - frame).max() <= 1


@pytest.mark.parametrize("with_landmarks", [True, False])
def test_a_different_face_changes_only_the_mask_inside_the_box(with_landmarks):
    frame = _texture(400, 600, seed=2)
    face = np.full((256, 256, 3), (250, 20, 250), np.uint8)  # as different as it gets
    x, y, side = 180, 40, 320
    landmarks = _face_landmarks(256) if with_landmarks else None
    out = paste_back(frame, face, (x, y, side, side), landmarks)
    changed = _changed(out, frame)
    assert changed.sum() > 0.05 * side * side
    inside = np.zeros_like(changed)
    inside[y : y + side, x : x + side] = True
    assert not np.any(changed & ~inside)
    box_out = out[y : y + side, x : x + side]
    box_in = frame[y : y + side, x : x + side]
    # zero change along the box border (and a few pixels into it): no edge can show
    for band in (np.s_[:3], np.s_[-3:]):
        assert np.array_equal(box_out[band], box_in[band])
        assert np.array_equal(box_out[:, band], box_in[:, band])
    # changes lie where the mask is > 0 (the mask for the box, landmarks mapped to box pixels)
    points = None if landmarks is None else (landmarks + 0.5) * side / 256 - 0.5
    alpha = blend_mask((side, side), points)
    assert not np.any(_changed(box_out, box_in) & (alpha == 0))
    # the lower face is covered, the eyes are not
    centre_mouth = (int(0.5 * side), int(0.72 * side))
    eye = (int(0.39 * side), int(0.41 * side))
    assert alpha[centre_mouth[1], centre_mouth[0]] > 0.95
    assert alpha[eye[1], eye[0]] < 0.05


def test_blend_has_no_step_at_the_mask_edge():
    yy, xx = np.mgrid[0:400, 0:500].astype(np.float32)
    frame = np.repeat((20 + 0.4 * xx)[..., None], 3, axis=2).astype(np.uint8)  # gentle gradient, steps ≤ 1
    face = np.full((256, 256, 3), 245, np.uint8)
    box = (100, 50, 300, 300)
    out = paste_back(frame, face, box, None, colour_strength=0.0).astype(int)
    steps = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    hard_step = 245 - int(frame[200, 100:400, 0].min())  # what a hard paste would show
    sigma = DEFAULT_FEATHER * IOD_PER_SIDE * 300
    # the steepest part of a Gaussian-blurred step rises 1 / (σ √(2π)) of the step per pixel
    bound = hard_step / (sigma * math.sqrt(2 * math.pi)) * 1.3 + 2
    assert steps <= bound < hard_step / 5
    assert out[50 + 210, 250, 0] > 240  # and the face did arrive


@pytest.mark.parametrize("box", [(-120, -60, 300, 300), (450, 120, 300, 300), (-50, 200, 200, 200)])
def test_boxes_partly_outside_the_frame(box):
    frame = _texture(360, 640, seed=3)
    face = np.zeros((256, 256, 3), np.uint8)
    out = paste_back(frame, face, box, _face_landmarks(256))
    x, y, w, h = box
    changed = _changed(out, frame)
    inside = np.zeros_like(changed)
    inside[max(y, 0) : y + h, max(x, 0) : x + w] = True
    assert changed.any() and not np.any(changed & ~inside)
    # the box's own same-side edges that lie inside the frame are unchanged
    if y + h < 360:
        assert not changed[y + h - 1].any()
    if x + w < 640:
        assert not changed[:, x + w - 1].any()


def test_paste_back_validates_its_inputs():
    frame = np.zeros((100, 100, 3), np.uint8)
    face = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        paste_back(frame, face, (200, 0, 64, 64))
    with pytest.raises(ValueError, match="positive"):
        paste_back(frame, face, (0, 0, 0, 64))
    with pytest.raises(ValueError, match="face"):
        paste_back(frame, face.astype(np.float32), (0, 0, 64, 64))
    with pytest.raises(ValueError, match="landmarks"):
        paste_back(frame, face, (0, 0, 64, 64), np.zeros((20, 2)))
    with pytest.raises(ValueError, match="NaN"):
        paste_back(frame, face, (0, 0, 64, 64), np.full((68, 2), np.nan))


def test_mask_is_zero_on_the_border_even_when_the_face_fills_the_crop_and_unites_faces():
    big = (_face_landmarks(256) - 128) * 1.8 + 128  # chin and jaw reach past the crop's edges
    alpha = blend_mask((256, 256), big)
    assert alpha.max() > 0.99
    border = np.concatenate([alpha[:2].ravel(), alpha[-2:].ravel(), alpha[:, :2].ravel(), alpha[:, -2:].ravel()])
    assert np.all(border == 0)
    assert np.abs(np.diff(alpha, axis=0)).max() < 0.15  # falls off smoothly rather than being cut
    # several faces (template and render): the union of their masks, so neither chin shows
    one, lower = _face_landmarks(256), _face_landmarks(256)
    lower[2:15, 1] += 20
    both = blend_mask((256, 256), np.stack([one, lower]))
    assert np.all(both >= np.maximum(blend_mask((256, 256), one), blend_mask((256, 256), lower)) - 1e-6)


# ---------------------------------------------------------------- colour matching


def _ycc_mean(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return image[mask].astype(np.float64).mean(axis=0) @ _RGB_TO_YCC.T


def test_match_colour_moves_a_tinted_face_to_the_reference_in_the_ring():
    reference = _texture(200, 200, seed=4)
    tinted = np.clip(reference * np.array([1.12, 0.95, 0.8]) + 10, 0, 255).astype(np.uint8)
    ring = np.zeros((200, 200), bool)
    ring[40:160, 40:160] = True
    ring[60:140, 60:140] = False
    before = tinted.copy()
    matched = match_colour(tinted, reference, ring)
    assert np.array_equal(tinted, before)
    error = np.abs(_ycc_mean(matched, ring) - _ycc_mean(reference, ring))
    assert error.max() < 0.6
    rgb_before = np.abs(tinted[ring].mean(0) - reference[ring].mean(0))
    rgb_after = np.abs(matched[ring].mean(0) - reference[ring].mean(0))
    assert np.all(rgb_after < 0.15 * rgb_before + 0.5)
    # half strength goes about half way; zero strength and identical images change nothing
    half = match_colour(tinted, reference, ring, strength=0.5)
    gap = _ycc_mean(tinted, ring) - _ycc_mean(reference, ring)
    assert np.allclose(_ycc_mean(half, ring) - _ycc_mean(reference, ring), gap / 2, atol=0.8)
    assert np.array_equal(match_colour(tinted, reference, ring, strength=0.0), tinted)
    assert np.array_equal(match_colour(reference, reference, ring.astype(np.float32) * 0.3), reference)


def test_match_colour_validates():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="no pixels"):
        match_colour(image, image, np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="strength"):
        match_colour(image, image, np.ones((10, 10), bool), strength=2.0)
    with pytest.raises(ValueError, match="shape"):
        match_colour(image, np.zeros((10, 11, 3), np.uint8), np.ones((10, 10), bool))


def test_paste_back_colour_matching_hides_a_tint_on_the_blend_band():
    frame = _texture(300, 300, seed=5)
    box = CropBox(22, 22, 256)
    tinted = np.clip(crop_frame(frame, box, 256) * np.array([1.1, 1.0, 0.82]), 0, 255).astype(np.uint8)
    landmarks = _face_landmarks(256)
    alpha = blend_mask((256, 256), landmarks)
    band = (alpha > 0.05) & (alpha < 0.6)
    region = np.s_[22:278, 22:278]
    plain = paste_back(frame, tinted, box, landmarks, colour_strength=0.0)[region]
    matched = paste_back(frame, tinted, box, landmarks)[region]
    error = lambda out: np.abs(out[band].astype(float) - frame[region][band]).mean()  # noqa: E731
    assert error(matched) < 0.3 * error(plain)


# ---------------------------------------------------------------- disclosure label, lower third


@pytest.mark.parametrize("position", POSITIONS)
def test_label_sits_in_its_corner_and_shows_text(position):
    frame = np.full((360, 640, 3), 128, np.uint8)
    out = draw_disclosure_label(frame, position=position)
    assert np.all(frame == 128)
    x, y, w, h = label_rect(frame.shape, position=position)
    changed = _changed(out, frame)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= x and xs.max() < x + w and ys.min() >= y and ys.max() < y + h
    top, left = position.split("-")[0] == "top", position.endswith("left")
    assert (ys.max() < 180) if top else (ys.min() >= 180)
    assert (xs.max() < 320) if left else (xs.min() >= 320)
    box = out[y : y + h, x : x + w]
    bright = np.all(box > 200, axis=2).sum()
    assert 0.03 * w * h < bright < 0.6 * w * h  # text strokes, white on the darkened box
    assert np.median(box) < 80  # the box is dark, so the text reads on any background
    other = draw_disclosure_label(frame, "Synthetic", position=position)
    assert not np.array_equal(other, out)


def test_label_scales_with_frame_height_and_validates():
    small = label_rect((360, 640, 3))
    large = label_rect((1080, 1920, 3))
    assert 2.5 < large[3] / small[3] < 3.5
    frame = np.zeros((360, 640, 3), np.uint8)
    with pytest.raises(ValueError, match="position"):
        draw_disclosure_label(frame, position="middle")
    with pytest.raises(ValueError, match="ASCII"):
        draw_disclosure_label(frame, "KI-generiert ✓")
    with pytest.raises(ValueError, match="fit"):
        draw_disclosure_label(np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ValueError, match="relative_height"):
        draw_disclosure_label(frame, relative_height=0.0)


def test_disclosure_config():
    config = DisclosureConfig()
    assert config.enabled and config.text == "AI-generated"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.enabled = False  # type: ignore[misc]
    with pytest.raises(ValueError, match="position"):
        DisclosureConfig(position="centre")
    with pytest.raises(ValueError, match="text"):
        DisclosureConfig(text="")
    frame = np.full((360, 640, 3), 90, np.uint8)
    assert np.array_equal(apply_disclosure(frame, config), draw_disclosure_label(frame))
    assert np.array_equal(apply_disclosure(frame, DisclosureConfig(enabled=False)), frame)
    assert disclosure_rect(frame.shape, DisclosureConfig(enabled=False)) is None
    assert set(config.metadata()) <= MP4_TAGS and "AI-generated" in config.metadata()["comment"]


@pytest.mark.parametrize("position", POSITIONS)
def test_lower_third_keeps_clear_of_the_label(position):
    frame = np.full((720, 1280, 3), 140, np.uint8)
    config = DisclosureConfig(position=position)
    label = disclosure_rect(frame.shape, config)
    bar = lower_third_rect(frame.shape, keep_clear=[label])
    out = draw_lower_third(frame, "Jane Doe", "Virtual anchor", keep_clear=[label])
    changed = _changed(out, frame)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= bar[0] and xs.max() < bar[0] + bar[2] and ys.min() >= bar[1] and ys.max() < bar[1] + bar[3]
    lx, ly, lw, lh = label
    assert not changed[ly : ly + lh, lx : lx + lw].any()
    assert ys.min() > 720 // 2  # still a lower third
    both = apply_disclosure(out, config)
    assert np.array_equal(both[ly : ly + lh, lx : lx + lw], apply_disclosure(frame, config)[ly : ly + lh, lx : lx + lw])
    # a subtitle is drawn; text too long for the bar is cut, never drawn past it
    assert not np.array_equal(out, draw_lower_third(frame, "Jane Doe", keep_clear=[label]))
    long = draw_lower_third(frame, "A headline far too long for any bar " * 6, keep_clear=[label])
    assert not np.any(_changed(long, frame) & ~_changed(out, frame) & (np.arange(1280) >= bar[0] + bar[2])[None, :])


def test_lower_third_validates():
    frame = np.zeros((200, 300, 3), np.uint8)
    with pytest.raises(ValueError, match="title"):
        draw_lower_third(frame, "")
    with pytest.raises(ValueError, match="fit"):
        lower_third_rect(frame.shape, keep_clear=[(0, 10, 300, 190)])


# ---------------------------------------------------------------- chroma key


KEY = (0, 177, 64)
SWATCHES = {  # RGB → expected alpha
    "key": (KEY, 0.0), "key in shadow": ((0, 62, 22), 0.0), "light skin": ((224, 172, 150), 1.0),
    "dark skin": ((120, 80, 60), 1.0), "grey suit": ((128, 128, 128), 1.0), "black hair": ((12, 10, 10), 1.0),
    "white shirt": ((245, 245, 245), 1.0), "red tie": ((200, 30, 40), 1.0), "blue": ((30, 60, 200), 1.0),
}


def test_chroma_key_alpha_on_key_and_other_colours():
    frame = np.array([[colour for colour, _ in SWATCHES.values()]], np.uint8).repeat(4, axis=0)
    alpha = chroma_key_mask(frame, KEY)
    assert alpha.dtype == np.float32 and alpha.shape == frame.shape[:2]
    for (name, (_, expected)), value in zip(SWATCHES.items(), alpha[0]):
        assert abs(value - expected) < 0.02, name
    edge = ((np.array(KEY) + (224, 172, 150)) / 2).astype(np.uint8)[None, None]  # half key, half skin
    assert 0.1 < chroma_key_mask(edge, KEY)[0, 0] < 0.9
    with pytest.raises(ValueError, match="grey"):
        chroma_key_mask(frame, (128, 128, 128))


def test_replace_background_composes_and_suppresses_spill():
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:] = KEY
    frame[30:90, 50:110] = (224, 172, 150)  # the "person"
    frame[30:90, 49] = ((np.array(KEY) + (224, 172, 150)) / 2).astype(np.uint8)  # a mixed edge column
    background = _texture(60, 200, seed=6)  # wider aspect: cover-fit crops the sides
    before = (frame.copy(), background.copy())
    alpha = chroma_key_mask(frame, KEY)
    out = replace_background(frame, background, alpha, key_colour=KEY)
    assert np.array_equal(frame, before[0]) and np.array_equal(background, before[1])
    fitted = fit_background(background, frame.shape)
    assert fitted.shape == frame.shape
    assert np.abs(out[5:25].astype(int) - fitted[5:25]).max() <= 1  # screen → background
    assert np.array_equal(out[35:85, 55:105], frame[35:85, 55:105])  # person kept (skin: no spill)
    # the edge keeps less green than a plain alpha blend would, at the same brightness
    plain = replace_background(frame, background, alpha, key_colour=None)
    greenness = lambda rgb: rgb[..., 1].astype(int) - rgb[..., [0, 2]].max(axis=-1)  # noqa: E731
    assert np.all(greenness(out[30:90, 49]) < greenness(plain[30:90, 49]))
    despilled = suppress_spill(frame[30:31, 49:50], KEY)
    luma = lambda rgb: rgb.astype(float) @ (0.299, 0.587, 0.114)  # noqa: E731
    assert abs(luma(despilled) - luma(frame[30:31, 49:50])).max() < 1.0
    with pytest.raises(ValueError, match="alpha"):
        replace_background(frame, background, alpha[:10])


def test_fit_background_covers_and_centres():
    background = np.zeros((100, 400, 3), np.uint8)
    background[:, 180:220] = 255  # a white band in the middle
    fitted = fit_background(background, (200, 200, 3))
    assert fitted.shape == (200, 200, 3)
    assert fitted[:, 100].min() == 255 and fitted[:, 0].max() == 0  # centre kept, sides cropped
    assert fit_background(background, background.shape) is background


# ---------------------------------------------------------------- a real face


@pytest.fixture(scope="module")
def real_face(shared_data):
    from newsanchor.features.face import FaceTracker
    from newsanchor.media.decode import iter_video_frames

    path = shared_data / "clips" / "hdtf_aoc.mp4"
    if not path.is_file():
        missing_dependency(f"{path} not found")
    frame = next(iter(iter_video_frames(path, 25)))
    landmarks = FaceTracker().update(frame)
    assert landmarks is not None
    # put the 512² clip into a wider studio frame so the box has frame around it
    studio = np.zeros((640, 900, 3), np.uint8)
    studio[:] = (30, 40, 70)
    studio[64:576, 300:812] = frame
    return studio, landmarks + (300, 64)


def test_real_face_paste_back(real_face):
    studio, landmarks = real_face
    box = choose_crop_box(landmarks[None], np.array([True]), 2.1, 0.12, (studio.shape[1], studio.shape[0]))
    crop_landmarks = to_crop_coords(landmarks, box, 256)
    same = paste_back(studio, crop_frame(studio, box, box.side), box, to_crop_coords(landmarks, box, box.side))
    assert np.abs(same.astype(int) - studio).max() <= 1
    # a "render": resampled, slightly soft and tinted, as a renderer's output would be
    render = cv2.GaussianBlur(crop_frame(studio, box, 256), (3, 3), 0)
    render = np.clip(render * np.array([1.08, 1.0, 0.88]) + 4, 0, 255).astype(np.uint8)
    plain = paste_back(studio, render, box, crop_landmarks, colour_strength=0.0)
    matched = paste_back(studio, render, box, crop_landmarks)
    x, y, side = max(box.x, 0), max(box.y, 0), box.side
    changed = _changed(matched, studio)
    assert changed.any() and not changed[: y, :].any() and not changed[:, : x].any()
    region = np.s_[y : y + side, x : x + side]
    alpha = blend_mask((side, side), (crop_landmarks + 0.5) * side / 256 - 0.5)
    alpha = alpha[: studio.shape[0] - y, : studio.shape[1] - x]
    band = (alpha > 0.05) & (alpha < 0.6)
    error = lambda out: np.abs(out[region][band].astype(float) - studio[region][band]).mean()  # noqa: E731
    assert error(matched) < 0.6 * error(plain)


# --- burned-in captions ------------------------------------------------------------------

def test_caption_burner_draws_the_cue_being_spoken_and_nothing_between_cues():
    from newsanchor.composite.burned_captions import CaptionBurner, caption_rect
    from newsanchor.speech.captions import Cue

    frame = np.full((360, 640, 3), 90, np.uint8)
    burner = CaptionBurner([Cue(1.5, 3.0, "Second cue"), Cue(0.0, 1.0, "First cue\nin two lines")])
    assert [burner.cue_at(t) for t in (0.0, 0.99, 1.2, 1.5, 2.9, 3.0)] == [0, 0, None, 1, 1, None]
    assert burner(frame, 1.2) is frame
    shown = burner(frame, 0.5)
    changed = np.argwhere((shown != frame).any(axis=2))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    x, y, w, h = caption_rect(frame.shape, burner._drawn[2].shape[:2])
    assert (x, y) == (left, top) and (x + w - 1, y + h - 1) == (right, bottom)
    assert abs((left + right) / 2 - 320) <= 1 and bottom < 360  # centred, inside the frame
    assert (shown[y:y + h, x:x + w] > 200).all(axis=2).sum() > 100  # white text on the box


def test_caption_keeps_clear_of_the_label_and_the_lower_third():
    from newsanchor.composite.burned_captions import CaptionBurner, caption_rect
    from newsanchor.speech.captions import Cue

    frame = np.zeros((360, 640, 3), np.uint8)
    config = DisclosureConfig(position="bottom-left")
    label = disclosure_rect(frame.shape, config)
    bar = lower_third_rect(frame.shape, keep_clear=[label])
    burner = CaptionBurner([Cue(0, 1, "A rather long caption line that is wide")])
    burner(frame, 0.5)
    x, y, w, h = caption_rect(frame.shape, burner._drawn[2].shape[:2], keep_clear=[label, bar])
    for rx, ry, rw, rh in (label, bar):
        assert y + h <= ry or x + w <= rx or rx + rw <= x


def test_caption_draws_letters_beyond_ascii_and_shrinks_long_lines():
    from newsanchor.composite.burned_captions import render_caption

    plain, accented = render_caption("cafe", 30, 600), render_caption("café", 30, 600)
    assert plain.shape == accented.shape and not np.array_equal(plain, accented)
    assert render_caption("x" * 200, 30, 300).shape[1] <= 300
