"""Generate ppdet26_transforms_golden.npz: PaddleDetection 2.6's transforms on fixed inputs/seeds.

Run in an environment with paddledet 2.6.0 (the scratch venv)::

    python tests/data/gen_transforms_golden.py

``tests/test_transforms.py`` imports ``CASES`` and ``make_input`` from here and runs ppdet_lite's
ops of the same names on the same inputs after the same ``np.random.seed(seed)``; ppdet is
imported only in ``main``, so the test needs no ppdet.

Stored arrays, for case ``c`` and seed ``s`` (``<c>/<s>/<i>/<field>``, ``i`` the sample index in
the (possibly one-sample) list):

* ``gt_bbox``, ``gt_class``, ``is_crowd``, ``im_shape``, ``scale_factor``, ``pad_gt_mask``,
  ``gt_score``: the field as ppdet left it (absent fields are not stored);
* ``image_shape`` and ``image_fp``: the image's shape, and a fingerprint of its values
  ``[sum(x), sum(x * k), sum(x ** 2)]`` over the flattened float64 image with
  ``k = (arange(n) % 97) / 97`` (position-sensitive, so flips and shifts change it);
* ``flipped``: 1 when ppdet marked the sample flipped, else 0.

Mosaic's ppdet output keeps boxes clipped to zero width or height and float32 classes; the test
compares ppdet_lite's (which drops such boxes and keeps int32) with the remaining rows.
* ``versions``: JSON with the paddledet and Paddle versions.
"""

import copy
import json
import os
import random
import sys

import numpy as np

# name: (op name, kwargs, input name, seeds)
CASES = {
    'resize_stretch': ('Resize', {'target_size': [80, 120], 'keep_ratio': False, 'interp': 2},
                       'one', [0]),
    'resize_keep_ratio': ('Resize', {'target_size': [64, 96], 'keep_ratio': True, 'interp': 1},
                          'one', [0]),
    'flip': ('RandomFlip', {'prob': 0.5}, 'one', list(range(6))),
    'normalize': ('NormalizeImage', {}, 'one', [0]),
    'normalize_no_scale': ('NormalizeImage', {'mean': [100., 110., 120.], 'std': [50., 60., 70.],
                                              'is_scale': False}, 'one', [0]),
    'permute': ('Permute', {}, 'one', [0]),
    'distort': ('RandomDistort', {}, 'one', list(range(6))),
    'distort_ssd': ('RandomDistort', {'random_apply': False, 'random_channel': True}, 'one',
                    list(range(6))),
    'expand': ('RandomExpand', {'fill_value': [123.675, 116.28, 103.53]}, 'one', list(range(6))),
    'crop': ('RandomCrop', {}, 'one', list(range(10))),
    'crop_free_aspect_cover_all': ('RandomCrop', {'aspect_ratio': None, 'cover_all_box': True,
                                                  'allow_no_crop': False}, 'one', list(range(6))),
    'batch_resize_fixed': ('BatchRandomResize', {'target_size': [64, 96], 'keep_ratio': False,
                                                 'random_size': False, 'interp': 2}, 'batch', [0]),
    'batch_resize_random': ('BatchRandomResize', {'target_size': [32, 48, 64], 'keep_ratio': False,
                                                  'random_size': True, 'random_interp': True},
                            'batch', list(range(6))),
    'pad_gt': ('PadGT', {}, 'batch', [0]),
    'pad_gt_no_boxes': ('PadGT', {}, 'batch_no_boxes', [0]),
    'pad_batch': ('PadBatch', {'pad_to_stride': 32}, 'chw_batch', [0]),
    'mixup': ('Mixup', {}, 'pair', list(range(4))),
    'mosaic': ('Mosaic', {'input_dim': [64, 64]}, 'five', list(range(8))),
    'mosaic_axis_aligned': ('Mosaic', {'input_dim': [64, 64], 'degrees': [0, 0], 'shear': [0, 0],
                                       'enable_mixup': False}, 'five', list(range(4))),
}

FIELDS = ('gt_bbox', 'gt_class', 'is_crowd', 'im_shape', 'scale_factor', 'pad_gt_mask',
          'gt_score')


def _sample(rng, h, w, boxes):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return {'image': rng.randint(0, 256, (h, w, 3)).astype(np.uint8), 'h': h, 'w': w,
            'im_id': np.array([0]), 'im_shape': np.array([h, w], np.float32),
            'scale_factor': np.array([1., 1.], np.float32), 'gt_bbox': boxes,
            'gt_class': (np.arange(n, dtype=np.int32) + 1).reshape(-1, 1),
            'is_crowd': (np.arange(n, dtype=np.int32) % 2).reshape(-1, 1)}


def make_input(name):
    """The list of sample dicts a case starts from (deterministic)."""
    rng = np.random.RandomState(0)
    if name == 'one':
        return [_sample(rng, 50, 100, [[10, 5, 30, 25], [60, 30, 90, 45], [40, 20, 50, 30]])]
    if name == 'batch':
        return [_sample(rng, 50, 100, [[10, 5, 30, 25], [60, 30, 90, 45]]),
                _sample(rng, 40, 60, []),
                _sample(rng, 64, 48, [[0, 0, 48, 64], [1, 2, 3, 4], [20, 30, 40, 50]])]
    if name == 'pair':
        return [_sample(rng, 50, 100, [[10, 5, 30, 25]]),
                _sample(rng, 60, 80, [[1, 2, 3, 4], [20, 30, 40, 50]])]
    if name == 'five':
        return [_sample(rng, 50, 100, [[10, 5, 30, 25], [60, 30, 90, 45], [40, 20, 50, 30]]),
                _sample(rng, 60, 40, [[2, 3, 30, 50]]),
                _sample(rng, 32, 32, []),
                _sample(rng, 80, 64, [[0, 0, 64, 80], [10, 10, 20, 20]]),
                _sample(rng, 48, 72, [[5, 5, 60, 40], [30, 2, 70, 20]])]
    if name == 'batch_no_boxes':
        return [_sample(rng, 40, 60, []), _sample(rng, 30, 20, [])]
    if name == 'chw_batch':
        return [{'image': rng.rand(3, 50, 100).astype(np.float32)},
                {'image': rng.rand(3, 70, 40).astype(np.float32)}]
    raise KeyError(name)


def fingerprint(image):
    x = np.asarray(image, dtype=np.float64).ravel()
    k = (np.arange(x.size) % 97) / 97.
    return np.array([x.sum(), (x * k).sum(), (x * x).sum()])


def record(prefix, samples, out):
    """Store the fields of ``samples`` under ``prefix/<i>/``."""
    for i, s in enumerate(samples):
        for key in FIELDS:
            if key in s:
                out[f'{prefix}/{i}/{key}'] = np.asarray(s[key])
        out[f'{prefix}/{i}/image_shape'] = np.array(np.shape(s['image']))
        out[f'{prefix}/{i}/image_fp'] = fingerprint(s['image'])
        out[f'{prefix}/{i}/flipped'] = np.array(int(bool(s.get('flipped', False))))


def run_case(build_op, case):
    """``{seed: output sample list}`` of one case with ops from ``build_op(name, kwargs)``."""
    op_name, kwargs, input_name, seeds = CASES[case]
    results = {}
    for seed in seeds:
        op = build_op(op_name, copy.deepcopy(kwargs))
        samples = copy.deepcopy(make_input(input_name))
        np.random.seed(seed)
        random.seed(seed)
        if op_name in ('BatchRandomResize', 'PadGT', 'PadBatch'):
            results[seed] = op(samples)
        elif op_name in ('Mixup', 'Mosaic'):
            results[seed] = [op(samples)]
        else:
            results[seed] = [op(s) for s in samples]
    return results


def main():
    import paddle
    import ppdet
    from ppdet.data import transform as ppdet_transform

    def build_op(name, kwargs):
        return getattr(ppdet_transform, name)(**kwargs)

    out = {}
    for case in CASES:
        for seed, samples in run_case(build_op, case).items():
            record(f'{case}/{seed}', samples, out)
    out['versions'] = np.array(json.dumps({'paddledet': ppdet.__version__,
                                           'paddle': paddle.__version__}))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        'ppdet26_transforms_golden.npz')
    np.savez_compressed(path, **out)
    print(f'wrote {path} ({len(out)} arrays)', file=sys.stderr)


if __name__ == '__main__':
    main()
