"""ppdet_lite.data.transforms: every op on hand-computed cases (the arithmetic is in the comments),
invariants of the random ops over many seeds, and PaddleDetection 2.6 golden outputs.

The reference sample is a 50 x 100 (h x w) image with the box [10, 5, 30, 25] (x1 y1 x2 y2)."""

import os

import cv2
import numpy as np
import pytest

from ppdet_lite.data import transforms as T
from ppdet_lite.data.transforms import ImageDecodeError

GOLDEN = os.path.join(os.path.dirname(__file__), 'data', 'ppdet26_transforms_golden.npz')


def make_sample(h=50, w=100, boxes=([10, 5, 30, 25],), classes=None, image=None):
    boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    n = len(boxes)
    if image is None:
        image = np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3).astype(np.uint8)
    classes = np.arange(n) if classes is None else np.asarray(classes)
    return {
        'image': image, 'h': h, 'w': w, 'im_id': np.array([7]),
        'im_shape': np.array([h, w], np.float32), 'scale_factor': np.array([1, 1], np.float32),
        'gt_bbox': boxes, 'gt_class': classes.reshape(-1, 1).astype(np.int32),
        'is_crowd': (classes.reshape(-1, 1) % 2).astype(np.int32),
    }


def test_every_op_is_registered_and_exported():
    from ppdet_lite.core.workspace import get_registered
    ops = ['Decode', 'RandomDistort', 'NormalizeImage', 'RandomFlip', 'Resize', 'RandomExpand',
           'RandomCrop', 'Permute', 'Mixup', 'Mosaic', 'BatchRandomResize', 'PadGT', 'PadBatch']
    for name in ops:
        assert get_registered(name) is getattr(T, name)
    assert set(ops) <= set(T.__all__)


# ------------------------------------------------------------------------------------------------
# Decode


def test_decode_reads_rgb_and_sets_shape_fields(tmp_path):
    bgr = np.zeros((20, 30, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 200      # B, G, R
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, bgr)
    out = T.Decode()({'im_file': path, 'h': 20., 'w': 30.})
    assert out['image'].dtype == np.uint8 and out['image'].shape == (20, 30, 3)
    assert out['image'][0, 0].tolist() == [200, 20, 10]      # RGB
    assert (out['h'], out['w']) == (20, 30)
    np.testing.assert_array_equal(out['im_shape'], np.array([20, 30], np.float32))
    np.testing.assert_array_equal(out['scale_factor'], np.array([1, 1], np.float32))
    assert out['im_shape'].dtype == np.float32 and out['scale_factor'].dtype == np.float32
    assert 'im_file' not in out                              # as PaddleDetection's Decode


def test_decode_trusts_the_image_over_the_annotation_size(tmp_path):
    path = str(tmp_path / 'b.jpg')
    cv2.imwrite(path, np.zeros((12, 16, 3), np.uint8))
    out = T.Decode()({'im_file': path, 'h': 99., 'w': 99.})
    assert (out['h'], out['w']) == (12, 16)


def test_decode_accepts_bytes_and_arrays(tmp_path):
    ok, buf = cv2.imencode('.png', np.full((5, 6, 3), 9, np.uint8))
    assert T.Decode()({'image': buf.tobytes()})['image'].shape == (5, 6, 3)
    arr = np.zeros((4, 3, 3), np.uint8)
    assert T.Decode()({'image': arr})['image'] is arr


@pytest.mark.parametrize('content', [b'', b'not an image at all', b'\x89PNG\r\n\x1a\n broken'])
def test_decode_corrupt_file_raises_naming_it(tmp_path, content):
    path = tmp_path / 'corrupt.jpg'
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError, match='corrupt.jpg'):
        T.Decode()({'im_file': str(path)})


def test_decode_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(ImageDecodeError, match='missing.jpg'):
        T.Decode()({'im_file': str(tmp_path / 'missing.jpg')})


# ------------------------------------------------------------------------------------------------
# RandomFlip


def test_flip_moves_boxes_with_the_image():
    s = make_sample(boxes=[[10, 5, 30, 25], [0, 0, 100, 50]])
    image = s['image'].copy()
    out = T.RandomFlip(prob=1.0)(s)
    # w = 100: x1' = 100 - 30 = 70, x2' = 100 - 10 = 90; the full-image box stays [0, 0, 100, 50]
    np.testing.assert_array_equal(out['gt_bbox'], [[70, 5, 90, 25], [0, 0, 100, 50]])
    np.testing.assert_array_equal(out['image'], image[:, ::-1])
    # the pixel at column x moves to column w - 1 - x
    assert out['image'][3, 99 - 12].tolist() == image[3, 12].tolist()
    assert out['flipped'] is True
    np.testing.assert_array_equal(out['gt_class'], [[0], [1]])


def test_flip_prob_zero_and_empty_boxes():
    s = make_sample()
    image = s['image'].copy()
    out = T.RandomFlip(prob=0.0)(s)
    np.testing.assert_array_equal(out['gt_bbox'], [[10, 5, 30, 25]])
    np.testing.assert_array_equal(out['image'], image)
    assert 'flipped' not in out
    empty = T.RandomFlip(prob=1.0)(make_sample(boxes=np.zeros((0, 4))))
    assert empty['gt_bbox'].shape == (0, 4)


def test_flip_prob_is_a_probability():
    hits = sum('flipped' in T.RandomFlip(0.25)(make_sample()) for _ in range(2000))
    assert 400 < hits < 600                                   # 2000 * 0.25 = 500
    with pytest.raises(TypeError, match='prob'):
        T.RandomFlip(prob='half')


# ------------------------------------------------------------------------------------------------
# Resize


def test_resize_x2_scales_boxes_and_shape_fields():
    out = T.Resize(target_size=[100, 200], keep_ratio=False)(make_sample())
    # scale_y = 100 / 50 = 2, scale_x = 200 / 100 = 2: [10, 5, 30, 25] * 2 = [20, 10, 60, 50]
    np.testing.assert_array_equal(out['gt_bbox'], [[20, 10, 60, 50]])
    assert out['image'].shape == (100, 200, 3) and out['image'].dtype == np.float32
    np.testing.assert_array_equal(out['im_shape'], [100, 200])
    np.testing.assert_array_equal(out['scale_factor'], [2, 2])


def test_resize_anisotropic_and_chained_scale_factor():
    s = make_sample()
    s['scale_factor'] = np.array([0.5, 1.0], np.float32)       # from an earlier resize
    out = T.Resize(target_size=[25, 400], keep_ratio=False)(s)
    # scale_y = 25 / 50 = 0.5, scale_x = 400 / 100 = 4
    # x: 10 * 4 = 40, 30 * 4 = 120; y: 5 * 0.5 = 2.5, 25 * 0.5 = 12.5
    np.testing.assert_array_equal(out['gt_bbox'], [[40, 2.5, 120, 12.5]])
    np.testing.assert_array_equal(out['scale_factor'], [0.5 * 0.5, 1.0 * 4])
    assert out['image'].shape == (25, 400, 3)


def test_resize_keep_ratio():
    out = T.Resize(target_size=[80, 120], keep_ratio=True)(make_sample())
    # s = min(min(80, 120) / min(50, 100), max(80, 120) / max(50, 100)) = min(1.6, 1.2) = 1.2
    # image 50 x 100 -> 60 x 120; box * 1.2 = [12, 6, 36, 30]
    np.testing.assert_allclose(out['gt_bbox'], [[12, 6, 36, 30]], rtol=1e-6)
    assert out['image'].shape == (60, 120, 3)
    np.testing.assert_allclose(out['im_shape'], [60, 120])
    np.testing.assert_allclose(out['scale_factor'], [1.2, 1.2])


def test_resize_keep_ratio_rounds_pixels_not_im_shape():
    s = make_sample(h=30, w=100, boxes=[[90, 0, 100, 30]], image=np.zeros((30, 100, 3), np.uint8))
    out = T.Resize(target_size=[40, 1000], keep_ratio=True)(s)
    # s = min(40 / 30, 1000 / 100) = 4 / 3: 100 * 4 / 3 = 133.33 -> OpenCV makes 133 columns
    assert out['image'].shape == (40, 133, 3)
    np.testing.assert_allclose(out['im_shape'], [40, 400 / 3], rtol=1e-6)   # not rounded
    # box * 4 / 3 = [120, 0, 133.33, 40]; x2 clipped to the 133 columns that exist
    np.testing.assert_allclose(out['gt_bbox'], [[120, 0, 133, 40]], rtol=1e-6)
    # im_shape / scale_factor recovers the original size exactly
    np.testing.assert_allclose(out['im_shape'] / out['scale_factor'], [30, 100], rtol=1e-6)


def test_resize_int_target_and_clipping():
    s = make_sample(boxes=[[95, 45, 100, 50]])
    out = T.Resize(target_size=20, keep_ratio=False)(s)
    # 20 / 50 = 0.4 in y, 20 / 100 = 0.2 in x: [19, 18, 20, 20], inside the 20 x 20 image
    np.testing.assert_allclose(out['gt_bbox'], [[19, 18, 20, 20]], rtol=1e-6)
    s = make_sample(boxes=[[90, 40, 104, 56]])                # pokes out of the 50 x 100 image
    out = T.Resize(target_size=[100, 200], keep_ratio=False)(s)
    # x2: [180, 80, 208, 112] clipped to the 200 x 100 image -> [180, 80, 200, 100]
    np.testing.assert_array_equal(out['gt_bbox'], [[180, 80, 200, 100]])


def test_resize_bad_target_size():
    for bad in ('640', [640], [640, 0], True):
        with pytest.raises(TypeError, match='target_size'):
            T.Resize(target_size=bad, keep_ratio=False)


# ------------------------------------------------------------------------------------------------
# NormalizeImage and Permute


def test_normalize_mean_std():
    im = np.zeros((1, 2, 3), np.uint8)
    im[0, 1] = 255
    out = T.NormalizeImage(mean=[0.5, 0.5, 0.25], std=[0.25, 0.5, 0.25])({'image': im})['image']
    # pixel 0: (0 - 0.5) / 0.25 = -2, (0 - 0.5) / 0.5 = -1, (0 - 0.25) / 0.25 = -1
    # pixel 255: (1 - 0.5) / 0.25 = 2, (1 - 0.5) / 0.5 = 1, (1 - 0.25) / 0.25 = 3
    np.testing.assert_allclose(out, [[[-2, -1, -1], [2, 1, 3]]], rtol=1e-6)
    assert out.dtype == np.float32


def test_normalize_without_scale_or_mean():
    im = np.full((1, 1, 3), 51, np.uint8)
    out = T.NormalizeImage(mean=[1, 1, 1], std=[2, 2, 2], is_scale=False)({'image': im})
    np.testing.assert_allclose(out['image'], [[[25, 25, 25]]])   # (51 - 1) / 2
    out = T.NormalizeImage(is_scale=True, norm_type='none')({'image': im})
    np.testing.assert_allclose(out['image'], [[[0.2, 0.2, 0.2]]], rtol=1e-6)  # 51 / 255


def test_normalize_rejects_bad_arguments():
    with pytest.raises(ValueError, match='std'):
        T.NormalizeImage(std=[1, 0, 1])
    with pytest.raises(TypeError):
        T.NormalizeImage(norm_type='minmax')


def test_permute_hwc_to_chw():
    im = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    out = T.Permute()({'image': im})['image']
    assert out.shape == (3, 2, 3)
    assert out[2, 1, 0] == im[1, 0, 2]                         # [c, y, x] = [y, x, c]


def test_sample_ops_also_map_over_a_list():
    # PaddleDetection configs put NormalizeImage / Permute in batch_transforms
    batch = [{'image': np.zeros((2, 4, 3), np.uint8)}, {'image': np.zeros((5, 4, 3), np.uint8)}]
    out = T.Permute()(T.NormalizeImage()(batch))
    assert [s['image'].shape for s in out] == [(3, 2, 4), (3, 5, 4)]


# ------------------------------------------------------------------------------------------------
# batch ops


def test_batch_random_resize_fixed_size():
    batch = [make_sample(), make_sample(h=40, w=80, boxes=[[0, 0, 40, 20]])]
    out = T.BatchRandomResize(target_size=[100, 200], keep_ratio=False, random_size=False)(batch)
    # sample 1: x2 in both axes -> [20, 10, 60, 50]; sample 2: 100 / 40 = 2.5, 200 / 80 = 2.5
    np.testing.assert_array_equal(out[0]['gt_bbox'], [[20, 10, 60, 50]])
    np.testing.assert_array_equal(out[1]['gt_bbox'], [[0, 0, 100, 50]])
    np.testing.assert_array_equal(out[1]['scale_factor'], [2.5, 2.5])
    assert [s['image'].shape for s in out] == [(100, 200, 3)] * 2
    assert all(s['im_shape'].tolist() == [100, 200] for s in out)


def test_batch_random_resize_draws_one_size_per_batch():
    op = T.BatchRandomResize(target_size=[32, 48, 64], keep_ratio=False, random_size=True,
                             random_interp=True)
    seen = set()
    for seed in range(40):
        np.random.seed(seed)
        batch = [make_sample(), make_sample(h=60, w=40, boxes=[[4, 6, 20, 30]])]
        out = op(batch)
        sizes = {s['image'].shape[:2] for s in out}
        assert len(sizes) == 1
        (h, w), = sizes
        seen.add(h)
        assert h == w
        for s, (h0, w0) in zip(out, [(50, 100), (60, 40)]):
            # scale_factor * original size = network size, and im_shape = the image's size
            np.testing.assert_allclose(s['scale_factor'] * [h0, w0], [h, w], rtol=1e-6)
            np.testing.assert_array_equal(s['im_shape'], [h, w])
    assert seen == {32, 48, 64}
    with pytest.raises(TypeError, match='list'):
        T.BatchRandomResize(target_size=640, keep_ratio=False, random_size=True)
    # a one-element list is not a size: rejected when the op is built, not at the first batch
    with pytest.raises(TypeError, match=r'random_size False.*\[h, w\]'):
        T.BatchRandomResize(target_size=[64], keep_ratio=False, random_size=False)
    with pytest.raises(TypeError, match=r"bad: '320'"):
        T.BatchRandomResize(target_size=[256, '320'], keep_ratio=False)


def test_pad_gt_pads_to_the_batch_max_with_a_mask():
    batch = [make_sample(boxes=[[1, 2, 3, 4], [5, 6, 7, 8]], classes=[3, 4]),
             make_sample(boxes=np.zeros((0, 4)), classes=[]),
             make_sample(boxes=[[9, 9, 19, 19]], classes=[1])]
    batch[2]['difficult'] = np.array([[1]], np.int32)
    out = T.PadGT()(batch)
    # n_max = max(2, 0, 1) = 2
    np.testing.assert_array_equal(out[0]['pad_gt_mask'], [[1], [1]])
    np.testing.assert_array_equal(out[1]['pad_gt_mask'], [[0], [0]])
    np.testing.assert_array_equal(out[2]['pad_gt_mask'], [[1], [0]])
    np.testing.assert_array_equal(out[2]['gt_bbox'], [[9, 9, 19, 19], [0, 0, 0, 0]])
    np.testing.assert_array_equal(out[2]['gt_class'], [[1], [0]])
    np.testing.assert_array_equal(out[2]['difficult'], [[1], [0]])
    np.testing.assert_array_equal(out[0]['gt_class'], [[3], [4]])
    np.testing.assert_array_equal(out[0]['is_crowd'], [[1], [0]])   # 3 % 2, 4 % 2
    assert out[1]['gt_bbox'].shape == (2, 4) and not out[1]['gt_bbox'].any()
    for s in out:
        assert s['gt_bbox'].dtype == np.float32 and s['gt_class'].dtype == np.int32
        assert s['pad_gt_mask'].dtype == np.float32 and s['is_crowd'].dtype == np.int32


def test_pad_gt_when_no_sample_has_boxes():
    batch = [make_sample(boxes=np.zeros((0, 4)), classes=[]) for _ in range(2)]
    out = T.PadGT()(batch)
    for s in out:
        assert s['pad_gt_mask'].shape == (0, 1) and s['pad_gt_mask'].dtype == np.float32
        assert s['gt_bbox'].shape == (0, 4) and s['gt_class'].shape == (0, 1)
    assert 'pad_gt_mask' not in T.PadGT(return_gt_mask=False)([make_sample()])[0]
    with pytest.raises(KeyError, match=r'im_id \[7\].*data_fields'):
        T.PadGT()([{'image': np.zeros((2, 2, 3)), 'im_id': np.array([7])}])


def test_pad_batch_to_stride():
    a, b = np.ones((3, 50, 100), np.float32), np.full((3, 40, 120), 2, np.float32)
    out = T.PadBatch(pad_to_stride=32)([{'image': a}, {'image': b}])
    # max h 50 -> ceil(50 / 32) * 32 = 64; max w 120 -> 128
    assert [s['image'].shape for s in out] == [(3, 64, 128)] * 2
    assert out[0]['image'][:, :50, :100].min() == 1 and out[0]['image'][:, 50:].max() == 0
    assert out[0]['image'][:, :, 100:].max() == 0
    assert out[1]['image'][:, :40, :120].min() == 2 and out[1]['image'][:, 40:].max() == 0
    out = T.PadBatch()([{'image': a}, {'image': b}])            # stride 0: batch max only
    assert [s['image'].shape for s in out] == [(3, 50, 120)] * 2


# ------------------------------------------------------------------------------------------------
# RandomExpand and RandomCrop with their draws fixed by hand


class Draws:
    """Replaces np.random.<name> with a function returning the given values in order."""

    def __init__(self, monkeypatch, **values):
        for name, seq in values.items():
            it = iter(seq)
            monkeypatch.setattr(np.random, name, lambda *a, _it=it, **k: next(_it))


def test_expand_pastes_the_image_and_shifts_boxes(monkeypatch):
    # draws: u = 0.9 >= prob 0.5 -> expand; ratio 2.0 -> canvas int(50 * 2) x int(100 * 2)
    #        y = 10 in [0, 100 - 50), x = 20 in [0, 200 - 100)
    Draws(monkeypatch, uniform=[0.9, 2.0], randint=[10, 20])
    s = make_sample()
    image = s['image'].copy()
    out = T.RandomExpand(ratio=4., prob=0.5, fill_value=[1, 2, 3])(s)
    assert out['image'].shape == (100, 200, 3) and out['image'].dtype == np.float32
    # box + [x, y, x, y] = [10 + 20, 5 + 10, 30 + 20, 25 + 10]
    np.testing.assert_array_equal(out['gt_bbox'], [[30, 15, 50, 35]])
    np.testing.assert_array_equal(out['image'][10:60, 20:120], image)
    assert out['image'][0, 0].tolist() == [1, 2, 3] and out['image'][99, 199].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(out['im_shape'], [100, 200])
    np.testing.assert_array_equal(out['gt_class'], [[0]])


def test_expand_skips_below_prob(monkeypatch):
    Draws(monkeypatch, uniform=[0.1])                 # u = 0.1 < prob 0.5: no expansion
    s = make_sample()
    out = T.RandomExpand(prob=0.5)(s)
    assert out['image'].shape == (50, 100, 3)
    np.testing.assert_array_equal(out['gt_bbox'], [[10, 5, 30, 25]])
    with pytest.raises(ValueError, match='ratio'):
        T.RandomExpand(ratio=1.0)


THREE_BOXES = [[10, 5, 30, 25], [60, 30, 90, 45], [40, 20, 50, 30]]


def test_crop_keeps_boxes_with_centre_inside_and_clips_them(monkeypatch):
    # thresholds kept in order (first 0.0); scale 0.5, aspect 1.0: window
    # int(50 * 0.5 / 1) = 25 high, int(100 * 0.5 * 1) = 50 wide, at y = 10, x = 20:
    # window [20, 10, 70, 35]
    Draws(monkeypatch, shuffle=[None], uniform=[0.5, 1.0], randint=[10, 20])
    s = make_sample(boxes=THREE_BOXES, classes=[4, 5, 6])
    s['difficult'] = np.array([[0], [1], [0]], np.int32)
    image = s['image'].copy()
    out = T.RandomCrop()(s)
    # box 0: centre (20, 15) inside; clipped [20, 10, 30, 25] - [20, 10] = [0, 0, 10, 15]
    # box 1: centre (75, 37.5): 75 >= 70, outside -> dropped with its class, crowd, difficult
    # box 2: centre (45, 25) inside; [40, 20, 50, 30] - [20, 10] = [20, 10, 30, 20]
    np.testing.assert_array_equal(out['gt_bbox'], [[0, 0, 10, 15], [20, 10, 30, 20]])
    np.testing.assert_array_equal(out['gt_class'], [[4], [6]])
    np.testing.assert_array_equal(out['is_crowd'], [[0], [0]])       # 4 % 2, 6 % 2
    np.testing.assert_array_equal(out['difficult'], [[0], [0]])
    np.testing.assert_array_equal(out['image'], image[10:35, 20:70])
    np.testing.assert_array_equal(out['im_shape'], [25, 50])


def test_crop_gives_up_when_no_window_reaches_the_threshold():
    # a 2 x 2 box can never have IoU 0.9 with a window of at least 30 % of each side
    np.random.seed(0)
    s = make_sample(boxes=[[0, 0, 2, 2]])
    out = T.RandomCrop(thresholds=[0.9], allow_no_crop=False, num_attempts=5)(s)
    assert out['image'].shape == (50, 100, 3)
    np.testing.assert_array_equal(out['gt_bbox'], [[0, 0, 2, 2]])
    empty = T.RandomCrop()(make_sample(boxes=np.zeros((0, 4))))
    assert empty['image'].shape == (50, 100, 3)


# ------------------------------------------------------------------------------------------------
# RandomDistort: each change with its delta fixed (low == high) and prob 0 (never skipped)

OFF = [0, 0, 1.0]           # uniform(0, 1) < 1 always: skipped


def distort(pixel, **kw):
    args = dict(hue=OFF, saturation=OFF, contrast=OFF, brightness=OFF)
    args.update(kw)
    s = make_sample(image=np.array([[pixel]], np.uint8), h=1, w=1, boxes=[[0, 0, 1, 1]])
    out = T.RandomDistort(**args)(s)
    assert out['image'].dtype == np.float32 and out['image'].shape == (1, 1, 3)
    np.testing.assert_array_equal(out['gt_bbox'], [[0, 0, 1, 1]])      # geometry untouched
    return out['image'][0, 0]


def test_distort_each_change_by_hand():
    np.random.seed(0)
    # brightness adds delta: (10, 20, 30) + 5
    np.testing.assert_allclose(distort([10, 20, 30], brightness=[5, 5, 0]), [15, 25, 35])
    # contrast multiplies: (10, 20, 30) * 2
    np.testing.assert_allclose(distort([10, 20, 30], contrast=[2, 2, 0]), [20, 40, 60])
    # saturation 0 -> grey 0.299 * 10 + 0.587 * 20 + 0.114 * 30 = 2.99 + 11.74 + 3.42 = 18.15
    np.testing.assert_allclose(distort([10, 20, 30], saturation=[0, 0, 0]), [18.15] * 3,
                               rtol=1e-5)
    # hue rotation by 0: identity (up to the 3-digit YIQ matrices)
    np.testing.assert_allclose(distort([200, 100, 50], hue=[0, 0, 0]), [200, 100, 50], atol=1)
    # hue delta 1 -> rotation by pi negates the chroma: RGB' = 2 Y - RGB with
    # Y = 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2 -> (48.4, 148.4, 198.4)
    np.testing.assert_allclose(distort([200, 100, 50], hue=[1, 1, 0]), [48.4, 148.4, 198.4],
                               atol=2)
    # count 0: no change is considered at all
    np.testing.assert_allclose(distort([10, 20, 30], brightness=[5, 5, 0], count=0), [10, 20, 30])


def test_distort_ssd_order_and_channel_swap():
    np.random.seed(1)
    for _ in range(10):
        out = distort([10, 20, 30], brightness=[5, 5, 0], contrast=[2, 2, 0], random_apply=False,
                      random_channel=True)
        # contrast before or after brightness: (p + 5) * 2 or p * 2 + 5, channels maybe permuted
        assert sorted(out.tolist()) in ([30, 50, 70], [25, 45, 65])
    with pytest.raises(ValueError, match='hue'):
        T.RandomDistort(hue=[-18, 18])


# ------------------------------------------------------------------------------------------------
# Mixup


def test_mixup_blends_images_and_keeps_both_box_sets(monkeypatch):
    Draws(monkeypatch, beta=[0.25])                          # factor 0.25
    a = make_sample(h=2, w=3, boxes=[[0, 0, 1, 1]], classes=[4],
                    image=np.full((2, 3, 3), 200, np.uint8))
    b = make_sample(h=3, w=2, boxes=[[0, 1, 2, 3], [1, 1, 2, 2]], classes=[5, 6],
                    image=np.full((3, 2, 3), 100, np.uint8))
    out = T.Mixup()([a, b])
    # canvas max(2, 3) x max(3, 2) = 3 x 3; where both images: 0.25 * 200 + 0.75 * 100 = 125,
    # only a (row < 2, column 2): 0.25 * 200 = 50, only b (row 2, column < 2): 0.75 * 100 = 75
    np.testing.assert_array_equal(out['image'][..., 0], [[125, 125, 50], [125, 125, 50],
                                                         [75, 75, 0]])
    assert out['image'].dtype == np.uint8
    np.testing.assert_array_equal(out['gt_bbox'], [[0, 0, 1, 1], [0, 1, 2, 3], [1, 1, 2, 2]])
    np.testing.assert_array_equal(out['gt_class'], [[4], [5], [6]])
    np.testing.assert_array_equal(out['is_crowd'], [[0], [1], [0]])
    np.testing.assert_array_equal(out['gt_score'], [[0.25], [0.75], [0.75]])
    assert out['gt_score'].dtype == np.float32
    np.testing.assert_array_equal(out['im_shape'], [3, 3])


def test_mixup_edge_factors_and_single_samples(monkeypatch):
    a, b = make_sample(), make_sample(h=10, w=10, boxes=[[1, 1, 2, 2]])
    Draws(monkeypatch, beta=[1.0, 0.0])
    assert T.Mixup()([a, b]) is a                            # factor 1: the first sample
    assert T.Mixup()([a, b]) is b                            # factor 0: the second
    assert T.Mixup()(a) is a                                 # mixing not active
    with pytest.raises(ValueError, match='two samples'):
        T.Mixup()([a])
    with pytest.raises(ValueError, match='positive'):
        T.Mixup(alpha=0)


def mosaic_inputs():
    """Five painted samples: sample k is a 32 x 32 image of colour 40 (k + 1) with one box
    [8, 8, 24, 24] of colour 40 (k + 1) + 20 and class k."""
    samples = []
    for k in range(5):
        image = np.full((32, 32, 3), 40 * (k + 1), np.uint8)
        image[8:24, 8:24] = 40 * (k + 1) + 20
        samples.append(make_sample(h=32, w=32, boxes=[[8, 8, 24, 24]], classes=[k], image=image))
    return samples


def test_mosaic_places_four_images_around_the_centre(monkeypatch):
    import random
    # np.random.uniform 0.5 <= prob 1: mosaic; random.uniform: yc 32 and xc 32 (the centre of the
    # 64 x 64 canvas), then degree 0, scale 1, shear 0, translate 0: the warp is the identity
    # crop of the canvas' top-left 32 x 32 quadrant
    Draws(monkeypatch, uniform=[0.5])
    values = iter([32, 32, 0, 1, 0, 0])
    monkeypatch.setattr(random, 'uniform', lambda a, b: next(values))
    op = T.Mosaic(input_dim=[32, 32], enable_mixup=False)
    out = op(mosaic_inputs())
    # each 32 x 32 image keeps its size (scale min(32 / 32, 32 / 32) = 1); image 0 goes top-left
    # with its bottom-right corner at (32, 32): it fills the whole output, box [8, 8, 24, 24] intact;
    # images 1-3 lie right of / below the centre, outside the 32 x 32 output: their boxes clip to
    # zero width or height and are dropped
    np.testing.assert_array_equal(out['image'], mosaic_inputs()[0]['image'])
    np.testing.assert_array_equal(out['gt_bbox'], [[8, 8, 24, 24]])
    np.testing.assert_array_equal(out['gt_class'], [[0]])
    assert out['gt_class'].dtype == np.int32 and out['gt_bbox'].dtype == np.float32
    np.testing.assert_array_equal(out['im_shape'], [32, 32])


def test_mosaic_translate_shows_all_four_quadrants(monkeypatch):
    import random
    # centre (32, 32) of the 64 x 64 canvas; scale 0.5 maps the canvas onto the 32 x 32 output:
    # image k's box [8, 8, 24, 24] sits at canvas [8 + 32 dx, 8 + 32 dy, ...] for its quadrant
    # (dx, dy) and lands at half that: [4 + 16 dx, 4 + 16 dy, 12 + 16 dx, 12 + 16 dy]
    Draws(monkeypatch, uniform=[0.5])
    values = iter([32, 32, 0, 0.5, 0, 0])
    monkeypatch.setattr(random, 'uniform', lambda a, b: next(values))
    out = T.Mosaic(input_dim=[32, 32], enable_mixup=False)(mosaic_inputs())
    np.testing.assert_allclose(out['gt_bbox'], [[4, 4, 12, 12], [20, 4, 28, 12], [4, 20, 12, 28],
                                                [20, 20, 28, 28]])
    np.testing.assert_array_equal(out['gt_class'], [[0], [1], [2], [3]])
    np.testing.assert_array_equal(out['is_crowd'], [[0], [1], [0], [1]])


def test_mosaic_passes_single_samples_and_checks_the_count():
    s = make_sample()
    assert T.Mosaic()(s) is s
    with pytest.raises(ValueError, match='5 samples'):
        T.Mosaic()([s, s])
    np.random.seed(0)
    first = make_sample()
    assert T.Mosaic(prob=0.0)([first] + [make_sample() for _ in range(4)]) is first


def test_mosaic_boxes_travel_with_the_image():
    import random
    for seed in range(60):
        np.random.seed(seed)
        random.seed(seed)
        # axis-aligned warps only, so a box's interior keeps its painted colour
        op = T.Mosaic(input_dim=[48, 48], degrees=[0, 0], shear=[0, 0], scale=[0.5, 1.5],
                      enable_mixup=False)
        out = op(mosaic_inputs())
        im, boxes = out['image'], out['gt_bbox']
        assert im.shape == (48, 48, 3) and im.dtype == np.uint8
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 48).all()
        assert (boxes[:, :2] < boxes[:, 2:]).all()
        np.testing.assert_array_equal(out['is_crowd'][:, 0], out['gt_class'][:, 0] % 2)
        for (x1, y1, x2, y2), c in zip(boxes, out['gt_class'][:, 0]):
            # bilinear resizing and warping (up to x1.5) blend the box edge with its
            # surroundings over ~2 px: test the interior 2 px in from the edges
            inner = im[int(np.ceil(y1)) + 2:int(np.floor(y2)) - 2,
                       int(np.ceil(x1)) + 2:int(np.floor(x2)) - 2]
            assert (np.abs(inner.astype(int) - (40 * (c + 1) + 20)) <= 1).all(), (seed, c)


# ------------------------------------------------------------------------------------------------
# invariants of the random geometric pipeline over many seeds


def painted_sample():
    """Three disjoint boxes, each painted with its own colour on a black 64 x 96 image."""
    boxes = np.array([[4, 6, 30, 40], [40, 10, 56, 20], [60, 30, 90, 60]], np.float32)
    image = np.zeros((64, 96, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        image[y1:y2, x1:x2] = 60 * (k + 1)
    return make_sample(h=64, w=96, boxes=boxes, classes=[0, 1, 2], image=image)


@pytest.mark.parametrize('keep_ratio', [False, True])
def test_boxes_travel_with_the_image_through_random_ops(keep_ratio):
    ops = [T.RandomExpand(fill_value=0), T.RandomCrop(), T.RandomFlip(),
           T.Resize(target_size=[80, 120], keep_ratio=keep_ratio, interp=cv2.INTER_NEAREST)]
    for seed in range(150):
        np.random.seed(seed)
        s = painted_sample()
        for op in ops:
            s = op(s)
        im, boxes, classes = s['image'], s['gt_bbox'], s['gt_class'][:, 0]
        h, w = im.shape[:2]
        assert 1 <= len(boxes) <= 3 and boxes.dtype == np.float32
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all(), seed
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all(), seed
        assert (boxes[:, :2] < boxes[:, 2:]).all(), seed
        # per-box fields stay aligned: is_crowd was built as class % 2
        np.testing.assert_array_equal(s['is_crowd'][:, 0], classes % 2)
        assert len(set(classes.tolist())) == len(classes)
        np.testing.assert_allclose(s['im_shape'], [h, w], atol=1 if keep_ratio else 0)
        for (x1, y1, x2, y2), c in zip(boxes, classes):
            # the interior (1 px in from the edges, for rounding) shows the box's own colour
            inner = im[int(np.ceil(y1)) + 1:int(np.floor(y2)) - 1,
                       int(np.ceil(x1)) + 1:int(np.floor(x2)) - 1]
            assert (inner == 60 * (c + 1)).all(), (seed, c)


# ------------------------------------------------------------------------------------------------
# PaddleDetection 2.6 on the same inputs and seeds (tests/data/gen_transforms_golden.py)


def _golden_generator():
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), 'data', 'gen_transforms_golden.py')
    spec = importlib.util.spec_from_file_location('gen_transforms_golden', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _golden_generator()
# photometric ops: PaddleDetection computes hue in float64, ppdet_lite in float32
IMAGE_RTOL = {'RandomDistort': 1e-5}


def drop_degenerate_boxes(fields, prefix):
    """PaddleDetection's Mosaic keeps boxes clipped to zero width or height; ppdet_lite drops
    them (with their classes), so compare the rest."""
    box = fields[prefix + 'gt_bbox']
    keep = (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])
    for key in ('gt_bbox', 'gt_class', 'is_crowd'):
        fields[prefix + key] = fields[prefix + key][keep]
    return fields


@pytest.mark.skipif(not os.path.isfile(GOLDEN), reason='golden file not generated')
@pytest.mark.parametrize('case', sorted(GEN.CASES))
def test_matches_paddledetection(case):
    golden = np.load(GOLDEN)
    op_name = GEN.CASES[case][0]
    results = GEN.run_case(lambda name, kwargs: getattr(T, name)(**kwargs), case)
    for seed, samples in results.items():
        ours = {}
        GEN.record(f'{case}/{seed}', samples, ours)
        theirs = {k: golden[k] for k in golden.files if k.startswith(f'{case}/{seed}/')}
        assert sorted(ours) == sorted(theirs)
        if op_name == 'Mosaic':
            theirs = drop_degenerate_boxes(theirs, f'{case}/{seed}/0/')
        for key, expected in theirs.items():
            if key.endswith('im_shape') and op_name in ('RandomExpand', 'RandomCrop', 'Mixup'):
                # ours follows the image (PaddleDetection leaves it stale until the next resize)
                np.testing.assert_array_equal(ours[key], ours[key[:-8] + 'image_shape'][:2])
                continue
            rtol = IMAGE_RTOL.get(op_name, 1e-6) if key.endswith('image_fp') else 1e-6
            np.testing.assert_allclose(ours[key], expected, rtol=rtol, atol=1e-5, err_msg=key)
            if not key.endswith('image_fp') and op_name != 'Mosaic':
                assert ours[key].dtype == expected.dtype, key
