"""deploy/python: the standalone preprocessing equals ppdet_lite's TestReader transforms, and the
numpy NMS for exports without NMS equals Paddle's multiclass_nms3 row for row."""

import os
import sys

import cv2
import numpy as np
import pytest

from ppdet_lite.data.transforms import Decode, NormalizeImage, Permute, Resize

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'python'))
import postprocess as deploy_post  # noqa: E402
import preprocess as deploy_pre  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    """A 150 x 230 (h x w) PNG with gradients and a rectangle, so resizing has work to do."""
    ys, xs = np.mgrid[0:150, 0:230]
    im = np.stack([xs % 256, ys * 2 % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)
    cv2.rectangle(im, (40, 30), (120, 100), (10, 200, 30), -1)
    path = str(tmp_path_factory.mktemp('img') / 'a.png')
    cv2.imwrite(path, im)
    return path


def reader_output(path, resize):
    sample = {'im_file': path}
    for op in (Decode(), Resize(**resize), NormalizeImage(MEAN, STD, True), Permute()):
        sample = op(sample)
    return sample


@pytest.mark.parametrize('resize', [
    {'target_size': [96, 160], 'keep_ratio': False, 'interp': 2},
    {'target_size': [128, 128], 'keep_ratio': False, 'interp': 1},
    {'target_size': [96, 192], 'keep_ratio': True, 'interp': 1},
])
def test_preprocess_equals_reader_transforms(image_file, resize):
    ops = [dict(type='Resize', **resize),
           {'type': 'NormalizeImage', 'mean': MEAN, 'std': STD, 'is_scale': True},
           {'type': 'Permute'}]
    inputs = deploy_pre.Preprocessor(ops)(image_file)
    expected = reader_output(image_file, resize)
    assert inputs['image'].shape == (1,) + expected['image'].shape
    np.testing.assert_array_equal(inputs['image'][0], expected['image'])
    np.testing.assert_array_equal(inputs['im_shape'][0], expected['im_shape'])
    np.testing.assert_array_equal(inputs['scale_factor'][0], expected['scale_factor'])
    if resize['keep_ratio']:
        # min(96 / 150, 192 / 230) = 0.64 -> 96 x 147.2
        np.testing.assert_allclose(inputs['im_shape'][0], [96, 147.2], rtol=1e-6)
        np.testing.assert_allclose(inputs['scale_factor'][0], [0.64, 0.64], rtol=1e-6)
    else:
        h, w = resize['target_size']
        np.testing.assert_allclose(inputs['scale_factor'][0], [h / 150, w / 230], rtol=1e-6)


def test_bgr_array_equals_file(image_file):
    pre = deploy_pre.Preprocessor([{'type': 'Resize', 'target_size': [64, 96],
                                    'keep_ratio': False}, {'type': 'Permute'}])
    from_file = pre(image_file)
    from_array = pre(cv2.imread(image_file))
    np.testing.assert_array_equal(from_file['image'], from_array['image'])


def test_batch_pads_to_the_largest(image_file):
    pre = deploy_pre.Preprocessor([{'type': 'Resize', 'target_size': [64, 64],
                                    'keep_ratio': True}, {'type': 'Permute'},
                                   {'type': 'PadStride', 'stride': 32}])
    small = cv2.resize(cv2.imread(image_file), (115, 75))
    batch = pre.batch([image_file, small])
    # 150 x 230 at min(64/150, 64/230) = 0.2783 -> 42 x 64, padded to 64 x 64; both end so
    assert batch['image'].shape == (2, 3, 64, 64)
    assert batch['im_shape'].shape == batch['scale_factor'].shape == (2, 2)
    assert batch['image'][0, :, 42:, :].max() == 0


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not an image')
    pre = deploy_pre.Preprocessor([{'type': 'Permute'}])
    with pytest.raises(deploy_pre.ImageReadError, match='broken.jpg'):
        pre(str(bad))
    with pytest.raises(deploy_pre.ImageReadError, match='missing.jpg'):
        pre(str(tmp_path / 'missing.jpg'))


def test_unknown_op_is_named():
    with pytest.raises(ValueError, match=r"Preprocess\[1\]: unknown op type 'Mosaic'"):
        deploy_pre.Preprocessor([{'type': 'Permute'}, {'type': 'Mosaic'}])


def test_nms_by_hand():
    """Class 0: A (0.9) suppresses B (0.8): IoU 9*9 / (100 + 100 - 81) = 81/119 = 0.68 > 0.5;
    C (0.7) is disjoint and stays. Class 1: D (0.6) and C (0.5) pass the 0.05 threshold, the
    others do not. Four survivors, keep_top_k 3 drops the lowest (class 1's C); rows come grouped
    by class, by score within one."""
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 5, 5]], 'float32')
    scores = np.array([[.9, .8, .7, .0], [.01, .02, .5, .6]], 'float32')
    out = deploy_post.multiclass_nms(boxes, scores, 0.05, -1, 3, nms_threshold=0.5)
    expected = np.array([[0, .9, 0, 0, 10, 10], [0, .7, 20, 20, 30, 30], [1, .6, 0, 0, 5, 5]],
                        'float32')
    np.testing.assert_array_equal(out, expected)
    # at IoU threshold 0.7 B survives (0.68 <= 0.7)
    out = deploy_post.multiclass_nms(boxes, scores, 0.05, -1, -1, nms_threshold=0.7)
    assert out[:, 1].tolist() == pytest.approx([.9, .8, .7, .6, .5])


@pytest.mark.parametrize('options', [
    {'score_threshold': 0.05, 'nms_top_k': -1, 'keep_top_k': -1, 'nms_threshold': 0.5},
    {'score_threshold': 0.3, 'nms_top_k': 20, 'keep_top_k': 15, 'nms_threshold': 0.7},
    {'score_threshold': 0.01, 'nms_top_k': 1000, 'keep_top_k': 100, 'nms_threshold': 0.6,
     'normalized': False, 'nms_eta': 0.9},
])
def test_numpy_nms_equals_paddle_multiclass_nms(options):
    """Random clustered boxes, 3 classes, batch 2, with tied scores: the same rows in the same
    order as Paddle's multiclass_nms3 (what the NMS export runs)."""
    import paddle
    from ppdet_lite.modeling.layers.multiclass_nms import multiclass_nms
    rng = np.random.RandomState(3)
    centres = rng.uniform(20, 180, (2, 8, 1, 2))
    xy = (centres + rng.randn(2, 8, 12, 2) * 6).reshape(2, 96, 2)
    wh = rng.uniform(10, 40, (2, 96, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=-1).astype('float32')
    scores = rng.uniform(0, 1, (2, 3, 96)).astype('float32')
    scores[:, :, 10:20] = scores[:, :, 30:40]  # exact ties across anchors
    expected, _, num = multiclass_nms(paddle.to_tensor(boxes), paddle.to_tensor(scores),
                                      background_label=-1, **{'normalized': True, 'nms_eta': 1.,
                                                              **options})
    expected, num = expected.numpy(), num.numpy()
    ends = np.cumsum(num)
    for b in range(2):
        got = deploy_post.multiclass_nms(boxes[b], scores[b], **options)
        np.testing.assert_array_equal(got, expected[ends[b] - num[b]:ends[b]])
    assert set(expected[:, 0].astype(int)) == {0, 1, 2}
