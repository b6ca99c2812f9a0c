import numpy as np

from newsanchor.features.crop import CropBox, canny_edges, choose_crop_box, crop_frame, from_crop_coords, to_crop_coords


def _face_points(cx, cy, size):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-size / 2, size / 2, (68, 2))
    pts[0] = (-size / 2, -size / 2)
    pts[1] = (size / 2, size / 2)
    return pts + (cx, cy)


def test_crop_coords_round_trip_and_pixel_centres():
    box = CropBox(-13, 40, 300)
    points = np.random.default_rng(1).uniform(-50, 500, (10, 68, 2))
    back = from_crop_coords(to_crop_coords(points, box, 256), box, 256)
    np.testing.assert_allclose(back, points, atol=1e-3)
    # the centre of the box's first pixel and of its last pixel map to the crop's corners' centres
    corners = np.array([[box.x + (box.side / 256 - 1) / 2, box.y + (box.side / 256 - 1) / 2]])
    np.testing.assert_allclose(to_crop_coords(corners, box, 256), [[0, 0]], atol=1e-4)


def test_crop_frame_follows_the_coordinate_mapping():
    # a frame with one bright pixel: after cropping and resizing, the brightest crop pixel is
    # where to_crop_coords says that pixel went
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[120, 170] = 255
    box = CropBox(100, 60, 128)
    crop = crop_frame(frame, box, 256)
    assert crop.shape == (256, 256, 3)
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    expected = to_crop_coords(np.array([170.0, 120.0]), box, 256)
    assert abs(x - expected[0]) <= 1 and abs(y - expected[1]) <= 1


def test_crop_past_the_frame_edge_replicates_the_border():
    frame = np.full((100, 100, 3), 7, np.uint8)
    frame[:, :50] = 200
    crop = crop_frame(frame, CropBox(-50, -50, 100), 100)
    assert crop.shape == (100, 100, 3)
    assert crop[0, 0, 0] == 200 and crop[99, 99, 0] == 200  # left column replicated leftwards
    assert crop[10, 99, 0] == 200


def test_crop_box_ignores_outlier_frames():
    frames = [_face_points(400, 300, 100) for _ in range(50)] + [_face_points(50, 50, 400) for _ in range(5)]
    landmarks = np.stack(frames).astype(np.float32)
    found = np.ones(len(frames), bool)
    found[-2:] = False
    box = choose_crop_box(landmarks, found, margin=2.0, raise_=0.0)
    assert box.side == 200
    assert abs(box.x + box.side / 2 - 400) <= 1 and abs(box.y + box.side / 2 - 300) <= 1
    raised = choose_crop_box(landmarks, found, margin=2.0, raise_=0.1)
    assert raised.y == box.y - 10


def test_canny_edges_find_a_square_outline():
    crop = np.zeros((64, 64, 3), np.uint8)
    crop[16:48, 16:48] = 255
    edges = canny_edges(crop, 50, 150, blur=0)
    assert edges.dtype == bool and edges.shape == (64, 64)
    assert edges[16:48, 14:18].any() and not edges[30:34, 30:34].any() and not edges[:8].any()


def test_crop_box_stays_inside_a_frame_that_is_already_a_face_crop():
    landmarks = np.stack([_face_points(256, 240, 300)] * 3).astype(np.float32)
    box = choose_crop_box(landmarks, np.ones(3, bool), margin=2.0, raise_=0.1, frame_size=(512, 480))
    assert box.side == 480 and 0 <= box.x and box.x + box.side <= 512 and box.y == 0
    # a box that fits is left where the face puts it
    small = choose_crop_box(landmarks / 4 + 100, np.ones(3, bool), margin=2.0, raise_=0.0, frame_size=(512, 480))
    assert small.side == 150 and small.x == 164 - 75 and small.y == 160 - 75
