"""The synthetic data generator: exact boxes, determinism, the data set, idempotence, CLI."""

import json
import os

import numpy as np
import pytest

from ppdet_lite.data import synthetic
from ppdet_lite.data.datasets import COCODataSet


def mask_box(mask):
    """COCO [x, y, w, h] of a boolean mask in pixel-edge coordinates, computed here."""
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]


@pytest.mark.parametrize('shape', ['circle', 'square', 'triangle', 'star', 'ring', 'vehicle'])
@pytest.mark.parametrize('size', [9., 23.5, 60.])
def test_box_is_tight_around_the_drawn_shape(shape, size):
    obj = {'shape': shape, 'cx': 40.3, 'cy': 37.8, 'size': size, 'angle': 0.7,
           'colour': [255, 255, 255], 'detail': [255, 255, 255]}
    image, boxes, areas, keep = synthetic.render(80, 96, [obj])
    drawn = image.any(axis=2)
    assert keep.tolist() == [0]
    assert boxes[0].tolist() == mask_box(drawn)
    assert areas[0] == drawn.sum()


def test_occluded_object_gets_the_box_of_its_visible_pixels():
    # a square at the left, half hidden by a circle drawn after it
    below = {'shape': 'square', 'cx': 30., 'cy': 30., 'size': 30., 'angle': np.pi / 4,
             'colour': [0, 0, 255]}
    above = {'shape': 'circle', 'cx': 40., 'cy': 30., 'size': 30., 'angle': 0.,
             'colour': [0, 255, 0]}
    image, boxes, areas, keep = synthetic.render(64, 80, [below, above])
    red = (image == [0, 0, 255]).all(axis=2)
    green = (image == [0, 255, 0]).all(axis=2)
    assert boxes.tolist() == [mask_box(red), mask_box(green)]
    assert areas.tolist() == [red.sum(), green.sum()]
    # alone, the square (half side 15 cos 45 deg = 10.6 px) spans x 19.4..40.6; the circle
    # covers x >= 40 - sqrt(15^2 - 10.6^2) = 29.4 on every row of the square, so the visible
    # part ends by x = 30 while the box of the square drawn alone reaches past x = 40
    alone = synthetic.render(64, 80, [below])[1][0]
    assert alone[0] + alone[2] > 40 and boxes[0][0] + boxes[0][2] <= 30


def test_fully_hidden_object_is_not_annotated():
    small = {'shape': 'circle', 'cx': 30., 'cy': 30., 'size': 10., 'angle': 0.,
             'colour': [0, 0, 255]}
    big = {'shape': 'square', 'cx': 30., 'cy': 30., 'size': 40., 'angle': 0.,
           'colour': [0, 255, 0]}
    _, boxes, _, keep = synthetic.render(64, 64, [small, big])
    assert keep.tolist() == [1] and len(boxes) == 1


def load(root, split):
    with open(os.path.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


TINY = dict(num_train=20, num_val=3, image_size=(96, 128))


def test_same_seed_gives_identical_files(tmp_path):
    a, generated = synthetic.generate(str(tmp_path / 'a'), seed=3, **TINY)
    assert generated
    b, _ = synthetic.generate(str(tmp_path / 'b'), seed=3, **TINY)
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    assert len([k for k in fa if k.endswith('.jpg')]) == 23
    assert all(fa[k] == fb[k] for k in fa)
    c, _ = synthetic.generate(str(tmp_path / 'c'), seed=4, **TINY)
    assert files(c)['annotations/instances_train.json'] != fa['annotations/instances_train.json']


def test_demo_set_content(tmp_path):
    root, _ = synthetic.generate(str(tmp_path), **TINY)
    train = load(root, 'train')
    assert [c['name'] for c in train['categories']] == ['circle', 'square', 'triangle', 'star',
                                                      'ring']
    with open(os.path.join(root, 'label_list.txt')) as f:
        assert f.read().split() == ['circle', 'square', 'triangle', 'star', 'ring']
    assert all((im['height'], im['width']) == (96, 128) for im in train['images'])
    per_image = {im['id']: 0 for im in train['images']}
    for a in train['annotations']:
        per_image[a['image_id']] += 1
        x, y, w, h = a['bbox']
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 96 and w >= 1 and h >= 1
        assert 0 < a['area'] <= w * h and a['iscrowd'] == 0
        # sizes: 8 px to half the short side (48 px); a star's tips may round to one more pixel
        assert max(w, h) <= 48 + 1
    assert per_image[20] == 0  # every 20th image has no object
    assert max(per_image.values()) <= 8 and sorted(per_image.values())[1] >= 1
    assert any(max(a['bbox'][2:]) <= 16 for a in train['annotations'])  # small objects exist
    # the data set loads, with the empty image when allow_empty
    ds = COCODataSet(root, 'train', 'annotations/instances_train.json',
                     ['image', 'gt_bbox', 'gt_class', 'is_crowd'], allow_empty=True)
    ds.parse_dataset()
    assert len(ds) == 20 and sum(len(r['gt_bbox']) == 0 for r in ds.roidbs) == 1


def test_small_objects_preset(tmp_path):
    root, _ = synthetic.generate(str(tmp_path), preset='small_objects', num_train=2, num_val=1)
    train = load(root, 'train')
    assert [c['name'] for c in train['categories']] == ['vehicle']
    assert all((im['height'], im['width']) == (400, 400) for im in train['images'])
    counts = [sum(a['image_id'] == im['id'] for a in train['annotations'])
              for im in train['images']]
    assert all(14 <= c <= 26 for c in counts)
    # vehicles 30-40 px long, 0.48 as wide: the longest box side is 30 * 0.48 .. 40 * 1.1 px
    sides = [max(a['bbox'][2:]) for a in train['annotations']]
    assert min(sides) >= 14 and max(sides) <= 45


def test_generation_is_skipped_when_up_to_date(tmp_path):
    root, generated = synthetic.generate(str(tmp_path / 'd'), **TINY)
    assert generated
    marker = os.path.join(root, 'train', 'marker')
    open(marker, 'w').close()
    assert synthetic.generate(root, **TINY) == (root, False)
    assert os.path.exists(marker)
    # other parameters, or force: regenerated (and stale files of the split are gone)
    assert synthetic.generate(root, **dict(TINY, num_train=2)) == (root, True)
    assert not os.path.exists(marker)
    assert len(load(root, 'train')['images']) == 2
    assert not os.path.exists(os.path.join(root, 'train', '000003.jpg'))
    assert synthetic.generate(root, force=True, **dict(TINY, num_train=2)) == (root, True)
    os.remove(os.path.join(root, 'annotations', 'instances_val.json'))  # a damaged output
    assert synthetic.generate(root, **dict(TINY, num_train=2)) == (root, True)


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not written by this generator'):
        synthetic.generate(str(tmp_path), **TINY)


@pytest.mark.parametrize('kwargs, message', [
    ({'preset': 'nope'}, 'unknown preset'),
    ({'image_size': (12, 12)}, 'too small'),
    ({'preset': 'small_objects', 'image_size': (36, 400)}, 'too small'),
    ({'num_train': -1}, 'must be >= 0'),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic.generate(str(tmp_path), **kwargs)


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        synthetic.main(['--help'])
    assert e.value.code == 0 and '--preset' in capsys.readouterr().out
    out = str(tmp_path / 'cli')
    args = ['--output_dir', out, '--num_train', '2', '--num_val', '1', '--image_size', '64', '80']
    assert synthetic.main(args) == 0
    assert 'train: 2 images' in capsys.readouterr().out
    assert load(out, 'val')['images'][0]['height'] == 64
    assert load(out, 'val')['images'][0]['width'] == 80
    assert synthetic.main(args) == 0
    assert 'up to date' in capsys.readouterr().out
    assert synthetic.main(['--output_dir', out, '--image_size', '10']) == 2
    assert 'too small' in capsys.readouterr().err
