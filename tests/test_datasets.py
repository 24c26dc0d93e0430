"""Datasets on tiny hand-written annotation files (COCO, VOC, image folders): boxes, class mapping,
crowd, clipping, degenerate boxes, empty images, bad files, corrupt images, YAML tags and `-o`,
per-sample seeding and category lists."""

import importlib.util
import json
import logging
import os
import random

import cv2
import numpy as np
import pytest

from ppdet_lite.core.workspace import create, load_config, merge_config
from ppdet_lite.data.datasets import (COCODataSet, DetDataset, ImageFolder, VOCDataSet,
                                      get_categories)
from ppdet_lite.data.datasets.dataset import sample_seed
from ppdet_lite.data.transforms.loading import ImageDecodeError

FIELDS = ['image', 'gt_bbox', 'gt_class', 'is_crowd']


@pytest.fixture
def logs():
    """Messages logged under ``ppdet_lite`` (its logger does not propagate to pytest's caplog)."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger('ppdet_lite')
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def warnings_of(records):
    return [r.getMessage() for r in records if r.levelno == logging.WARNING]


def write_image(path, h=64, w=96, value=128):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.full((h, w, 3), value, np.uint8))


def write_coco(root, images, annotations, categories, name='train.json', write_images=True):
    """COCO json under root/annotations and (optionally) the image files under root/images."""
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    for im in images:
        if write_images:
            write_image(os.path.join(root, 'images', im['file_name']), im['height'], im['width'])
    with open(os.path.join(root, 'annotations', name), 'w') as f:
        json.dump({'images': images, 'annotations': annotations, 'categories': categories}, f)
    return os.path.join('annotations', name)


def img(id_, h=64, w=96):
    return {'id': id_, 'file_name': f'{id_:03d}.png', 'height': h, 'width': w}


def ann(id_, image_id, cat, bbox, iscrowd=0, area=None):
    return {'id': id_, 'image_id': image_id, 'category_id': cat, 'bbox': bbox,
            'iscrowd': iscrowd, 'area': bbox[2] * bbox[3] if area is None else area}


# category ids deliberately not contiguous and not sorted: classes follow the file's order
CATS = [{'id': 7, 'name': 'cat'}, {'id': 3, 'name': 'dog'}]


def coco(root, anno, **kwargs):
    ds = COCODataSet(dataset_dir=str(root), image_dir='images', anno_path=anno,
                     data_fields=kwargs.pop('data_fields', FIELDS), **kwargs)
    ds.parse_dataset()
    return ds


# ---------------------------------------------------------------------------------------------
# COCODataSet


def test_coco_boxes_classes_and_mapping(tmp_path):
    anno = write_coco(tmp_path, [img(2), img(1, h=50, w=40)],
                      [ann(1, 1, 3, [10, 5, 20, 30]), ann(2, 2, 7, [0.5, 1.25, 4, 8]),
                       ann(3, 2, 3, [30, 20, 10, 10])], CATS)
    ds = coco(tmp_path, anno)
    assert ds.catid2clsid == {7: 0, 3: 1}
    assert ds.clsid2catid == {0: 7, 1: 3}
    assert ds.cname2cid == {'cat': 0, 'dog': 1}
    assert len(ds) == 2
    first, second = ds.roidbs  # sorted by image id
    assert first['im_file'] == os.path.join(str(tmp_path), 'images', '001.png')
    assert first['im_id'].dtype == np.int64 and first['im_id'].tolist() == [1]
    assert (first['h'], first['w']) == (50., 40.)
    # [x, y, w, h] = [10, 5, 20, 30] -> x1y1x2y2 [10, 5, 10 + 20, 5 + 30]
    np.testing.assert_array_equal(first['gt_bbox'], [[10, 5, 30, 35]])
    assert first['gt_bbox'].dtype == np.float32 and first['gt_class'].dtype == np.int32
    assert first['gt_class'].tolist() == [[1]]  # category 3 ('dog') is class 1
    # [0.5, 1.25, 4, 8] -> [0.5, 1.25, 4.5, 9.25]
    np.testing.assert_allclose(second['gt_bbox'], [[0.5, 1.25, 4.5, 9.25], [30, 20, 40, 30]])
    assert second['gt_class'].tolist() == [[0], [1]]
    assert second['is_crowd'].tolist() == [[0], [0]]
    assert ds.get_imid2path() == {1: first['im_file'], 2: second['im_file']}
    assert ds.get_anno() == os.path.join(str(tmp_path), 'annotations', 'train.json')


def test_coco_data_fields_select_keys(tmp_path):
    anno = write_coco(tmp_path, [img(1)], [ann(1, 1, 3, [10, 5, 20, 30])], CATS)
    rec = coco(tmp_path, anno, data_fields=['image', 'gt_bbox']).roidbs[0]
    assert sorted(rec) == ['gt_bbox', 'h', 'im_file', 'im_id', 'w']


def test_coco_crowd_left_out_unless_load_crowd(tmp_path):
    anno = write_coco(tmp_path, [img(1)],
                      [ann(1, 1, 3, [10, 5, 20, 30]), ann(2, 1, 7, [40, 10, 30, 20], iscrowd=1)],
                      CATS)
    rec = coco(tmp_path, anno).roidbs[0]
    np.testing.assert_array_equal(rec['gt_bbox'], [[10, 5, 30, 35]])
    rec = coco(tmp_path, anno, load_crowd=True).roidbs[0]
    np.testing.assert_array_equal(rec['gt_bbox'], [[10, 5, 30, 35], [40, 10, 70, 30]])
    assert rec['is_crowd'].tolist() == [[0], [1]]
    assert rec['gt_class'].tolist() == [[1], [0]]


def test_coco_clips_and_drops_degenerate_boxes_naming_the_image(tmp_path, logs):
    # image 96 wide x 64 high
    anno = write_coco(tmp_path, [img(1), img(2)], [
        ann(1, 1, 3, [-5, 10, 20, 70]),      # x1 -5 -> 0; y2 10 + 70 = 80 -> 64
        ann(2, 1, 3, [90, 0, 10, 10]),       # x2 100 -> 96
        ann(3, 1, 7, [20, 20, 0, 10]),       # zero width: dropped
        ann(4, 1, 7, [100, 10, 5, 5]),       # entirely right of the image: dropped
        ann(5, 1, 7, [10, 10, 5, 5], area=0),  # annotated area 0: dropped (PaddleDetection)
        ann(6, 2, 3, [1, 2, 3, 4]),
    ], CATS)
    ds = coco(tmp_path, anno)
    np.testing.assert_array_equal(ds.roidbs[0]['gt_bbox'], [[0, 10, 20 - 5, 64], [90, 0, 96, 10]])
    img1 = os.path.join(str(tmp_path), 'images', '001.png')
    img2 = os.path.join(str(tmp_path), 'images', '002.png')
    msgs = warnings_of(logs)
    dropped = [m for m in msgs if 'dropped 3 boxes' in m]
    clipped = [m for m in msgs if 'clipped 2 boxes' in m]
    assert len(dropped) == 1 and img1 in dropped[0] and img2 not in dropped[0]
    assert len(clipped) == 1 and img1 in clipped[0]


def test_coco_images_without_boxes_need_allow_empty(tmp_path):
    anno = write_coco(tmp_path, [img(1), img(2), img(3)],
                      [ann(1, 1, 3, [10, 5, 20, 30]), ann(2, 3, 3, [10, 10, 0, 0])], CATS)
    assert [r['im_id'][0] for r in coco(tmp_path, anno).roidbs] == [1]
    ds = coco(tmp_path, anno, allow_empty=True)
    assert [r['im_id'][0] for r in ds.roidbs] == [1, 2, 3]
    assert ds.roidbs[1]['gt_bbox'].shape == (0, 4) and ds.roidbs[1]['gt_class'].shape == (0, 1)
    assert ds.roidbs[2]['gt_bbox'].shape == (0, 4)  # its only box is degenerate


@pytest.mark.parametrize('ratio, kept_empty', [
    (1.0, 3),   # outside [0, 1): keep all
    (-1., 3),
    (0.5, 2),   # int(2 * 0.5 / 0.5) = 2
    (0.2, 0),   # int(2 * 0.2 / 0.8) = int(0.5) = 0
    (0.4, 1),   # int(2 * 0.4 / 0.6) = int(1.33) = 1
    (0.75, 3),  # int(2 * 0.75 / 0.25) = 6, at most the 3 there are
])
def test_coco_empty_ratio(tmp_path, ratio, kept_empty):
    anno = write_coco(tmp_path, [img(i) for i in range(1, 6)],
                      [ann(1, 1, 3, [10, 5, 20, 30]), ann(2, 2, 7, [1, 1, 5, 5])], CATS)
    ds = coco(tmp_path, anno, allow_empty=True, empty_ratio=ratio)
    ids = [int(r['im_id'][0]) for r in ds.roidbs]
    assert ids[:2] == [1, 2]  # non-empty records first, as PaddleDetection
    assert len(ids) == 2 + kept_empty and set(ids[2:]) <= {3, 4, 5}


def test_coco_sample_num_and_repeat(tmp_path):
    anno = write_coco(tmp_path, [img(i) for i in range(1, 5)],
                      [ann(i, i, 3, [1, 1, 5, 5]) for i in range(1, 5)], CATS)
    assert len(coco(tmp_path, anno, sample_num=3)) == 3
    ds = coco(tmp_path, anno, repeat=2)
    assert len(ds) == 8
    assert ds[5]['im_id'].tolist() == [2]  # 5 % 4 = 1 -> second record


def test_coco_missing_image_is_skipped_with_warning(tmp_path, logs):
    anno = write_coco(tmp_path, [img(1), img(2)],
                      [ann(1, 1, 3, [1, 1, 5, 5]), ann(2, 2, 3, [1, 1, 5, 5])], CATS)
    missing = os.path.join(str(tmp_path), 'images', '002.png')
    os.remove(missing)
    ds = coco(tmp_path, anno)
    assert [r['im_id'][0] for r in ds.roidbs] == [1]
    assert any(missing in m and 'do not exist' in m for m in warnings_of(logs))


def test_coco_no_usable_box_is_a_clear_error(tmp_path):
    anno = write_coco(tmp_path, [img(1)], [ann(1, 1, 3, [200, 200, 5, 5])], CATS)
    with pytest.raises(ValueError, match='no usable image in .*train.json.*allow_empty'):
        coco(tmp_path, anno)
    assert len(coco(tmp_path, anno, allow_empty=True)) == 1


@pytest.mark.parametrize('content, message', [
    ('', 'is empty or not valid JSON'),
    ('{"images": [], "annotations": [], "categories": []}', 'lists no images'),
    ('[1, 2', 'is empty or not valid JSON'),
])
def test_coco_empty_or_invalid_annotation_file(tmp_path, content, message):
    os.makedirs(tmp_path / 'images')
    (tmp_path / 'bad.json').write_text(content)
    with pytest.raises(ValueError, match=message) as e:
        coco(tmp_path, 'bad.json')
    assert str(tmp_path / 'bad.json') in str(e.value)


def test_coco_missing_paths_are_named(tmp_path):
    anno = write_coco(tmp_path, [img(1)], [ann(1, 1, 3, [1, 1, 5, 5])], CATS)
    with pytest.raises(FileNotFoundError, match='nothere.json'):
        coco(tmp_path, 'annotations/nothere.json')
    with pytest.raises(FileNotFoundError, match='no_images'):
        COCODataSet(str(tmp_path), 'no_images', anno, FIELDS).parse_dataset()
    with pytest.raises(ValueError, match='expected a .json file'):
        coco(tmp_path, 'annotations/train.txt')


def test_coco_unknown_category_is_named(tmp_path):
    anno = write_coco(tmp_path, [img(1)], [ann(1, 1, 99, [1, 1, 5, 5])], CATS)
    with pytest.raises(ValueError, match='category_id 99'):
        coco(tmp_path, anno)


def test_coco_non_finite_box_names_the_annotation_and_image(tmp_path):
    # Python's json writes NaN; caught here, not as a batch index inside the assigner
    anno = write_coco(tmp_path, [img(1)], [ann(5, 1, 3, [1, float('nan'), 5, 5], area=25)], CATS)
    with pytest.raises(ValueError, match=r'annotation 5 of image .*001\.png has a non-finite bbox'):
        coco(tmp_path, anno)


def test_coco_from_yaml_tag(tmp_path):
    anno = write_coco(tmp_path, [img(1)], [ann(1, 1, 3, [1, 1, 5, 5])], CATS)
    cfg_path = tmp_path / 'data.yml'
    cfg_path.write_text(
        f"TrainDataset: !COCODataSet\n"
        f"  dataset_dir: {tmp_path}\n  image_dir: images\n  anno_path: {anno}\n"
        f"  data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']\n  allow_empty: true\n")
    cfg = load_config(str(cfg_path))
    ds = create('TrainDataset', cfg)()  # PaddleDetection's habit: the call returns the dataset
    assert isinstance(ds, COCODataSet) and ds.allow_empty
    assert ds.anno_path == anno and ds.data_fields == FIELDS
    ds.parse_dataset()
    np.testing.assert_array_equal(ds.roidbs[0]['gt_bbox'], [[1, 1, 6, 6]])


# ---------------------------------------------------------------------------------------------
# DetDataset: transform, corrupt images, seeding


class Records(DetDataset):
    """A dataset over given records."""

    def __init__(self, records, **kwargs):
        super().__init__(**kwargs)
        self._records = records

    def parse_dataset(self):
        self.roidbs = self._records


def cv2_decode(sample):
    """Stand-in for the transforms' Decode: cv2 read, ImageDecodeError naming the file."""
    image = cv2.imread(sample['im_file'])
    if image is None:
        raise ImageDecodeError(f'cannot decode image {sample["im_file"]}')
    sample['image'] = image
    return sample


def test_corrupt_image_is_skipped_with_one_warning(tmp_path, logs):
    good = str(tmp_path / 'good.png')
    write_image(good, 8, 8)
    bad = str(tmp_path / 'bad.jpg')
    with open(bad, 'wb') as f:
        f.write(b'\xff\xd8 not a jpeg')
    ds = Records([{'im_file': bad, 'im_id': np.array([0])},
                  {'im_file': good, 'im_id': np.array([1])}])
    ds.set_transform(cv2_decode)
    assert ds[0]['im_file'] == good  # (0 + 1) % 2
    assert ds[0]['im_file'] == good
    assert ds[1]['image'].shape == (8, 8, 3)
    warned = [m for m in warnings_of(logs) if bad in m]
    assert len(warned) == 1 and 'skipping unreadable image' in warned[0]


def test_all_images_corrupt_is_a_clear_error(tmp_path):
    bads = []
    for i in range(3):
        bads.append(str(tmp_path / f'bad{i}.jpg'))
        open(bads[-1], 'wb').close()
    ds = Records([{'im_file': b} for b in bads])
    ds.set_transform(cv2_decode)
    with pytest.raises(RuntimeError, match='none of the 3 images can be read') as e:
        ds[1]
    assert all(b in str(e.value) for b in bads)


def test_getitem_returns_a_transformed_copy():
    rec = {'im_file': 'a.jpg', 'gt_bbox': np.array([[1., 2., 3., 4.]], np.float32)}
    ds = Records([rec])

    def shift(sample):
        sample['gt_bbox'] += 10
        return sample

    ds.set_transform(shift)
    np.testing.assert_array_equal(ds[0]['gt_bbox'], [[11, 12, 13, 14]])
    np.testing.assert_array_equal(rec['gt_bbox'], [[1, 2, 3, 4]])  # the record is untouched
    assert ds() is ds


def draws(sample):
    sample['draws'] = (random.random(), float(np.random.rand()), int(np.random.randint(1 << 30)))
    return sample


def test_seeding_is_a_function_of_seed_epoch_and_index():
    ds = Records([{'im_file': f'{i}.jpg'} for i in range(4)])
    ds.set_transform(draws)
    ds.set_kwargs(seed=5)
    ds.set_epoch(2)
    first = [ds[i]['draws'] for i in range(4)]
    # any order, any interleaving (as with several workers) gives the same draws
    random.seed(123)
    np.random.seed(123)
    assert [ds[i]['draws'] for i in (3, 1, 0, 2)] == [first[3], first[1], first[0], first[2]]
    # the draws are those of the generators seeded with sample_seed(5, 2, idx)
    random.seed(sample_seed(5, 2, 3))
    np.random.seed(sample_seed(5, 2, 3))
    assert draws({})['draws'] == first[3]
    assert len(set(first)) == 4  # different indices differ
    ds.set_epoch(3)
    assert all(ds[i]['draws'] != first[i] for i in range(4))
    ds.set_epoch(2)
    ds.set_kwargs(seed=6)
    assert all(ds[i]['draws'] != first[i] for i in range(4))


def test_mix_epochs_hand_the_transform_several_records():
    ds = Records([{'im_file': f'{i}.jpg'} for i in range(4)])
    ds.set_transform(lambda s: s)
    assert isinstance(ds[0], dict)  # mixes are off by default (-1)
    ds.set_kwargs(mosaic_epoch=3)
    ds.set_epoch(2)
    out = ds[1]
    assert len(out) == 5 and out[0]['im_file'] == '1.jpg'
    ds.set_epoch(3)  # PaddleDetection: active while epoch < mosaic_epoch
    assert isinstance(ds[1], dict)
    ds.set_kwargs(mixup_epoch=0)  # 0: always
    assert len(ds[1]) == 2


def test_coco_dataset_dir_from_command_line_override(tmp_path):
    """``-o TrainDataset.dataset_dir=...`` retargets a tagged dataset without editing the file."""
    anno = write_coco(tmp_path / 'mine', [img(1)], [ann(1, 1, 3, [1, 1, 5, 5])], CATS)
    cfg_path = tmp_path / 'data.yml'
    cfg_path.write_text(
        "TrainDataset: !COCODataSet\n"
        "  dataset_dir: dataset/coco\n  image_dir: train2017\n"
        "  anno_path: annotations/instances_train2017.json\n"
        "  data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']\n")
    cfg = load_config(str(cfg_path))
    merge_config([f'TrainDataset.dataset_dir={tmp_path / "mine"}', 'TrainDataset.image_dir=images',
                  f'TrainDataset.anno_path={anno}'], cfg)
    ds = create('TrainDataset', cfg)
    assert ds.dataset_dir == str(tmp_path / 'mine') and ds.image_dir == 'images'
    ds.parse_dataset()
    assert ds.roidbs[0]['im_file'] == os.path.join(str(tmp_path / 'mine'), 'images', '001.png')


# ---------------------------------------------------------------------------------------------
# VOCDataSet


def write_voc_xml(path, objects, w=96, h=64, im_id=None):
    """objects: (name, xmin, ymin, xmax, ymax, difficult or None)."""
    parts = ['<annotation>']
    if im_id is not None:
        parts.append(f'<id>{im_id}</id>')
    parts.append(f'<size><width>{w}</width><height>{h}</height><depth>3</depth></size>')
    for name, x1, y1, x2, y2, difficult in objects:
        parts.append('<object>' + f'<name>{name}</name>'
                     + ('' if difficult is None else f'<difficult>{difficult}</difficult>')
                     + f'<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>'
                       f'<ymax>{y2}</ymax></bndbox></object>')
    parts.append('</annotation>')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(parts))


def voc_set(root, per_image, labels=('person', 'car')):
    """JPEGImages/<i>.png, Annotations/<i>.xml, trainval.txt and label_list.txt under root."""
    lines = []
    for i, objects in enumerate(per_image):
        write_image(os.path.join(root, 'JPEGImages', f'{i}.png'))
        write_voc_xml(os.path.join(root, 'Annotations', f'{i}.xml'), objects)
        lines.append(f'JPEGImages/{i}.png Annotations/{i}.xml')
    with open(os.path.join(root, 'trainval.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(os.path.join(root, 'label_list.txt'), 'w') as f:
        f.write('\n'.join(labels) + '\n')


VOC_FIELDS = ['image', 'gt_bbox', 'gt_class', 'difficult']


def voc(root, **kwargs):
    ds = VOCDataSet(dataset_dir=str(root), anno_path='trainval.txt',
                    data_fields=kwargs.pop('data_fields', VOC_FIELDS),
                    label_list=kwargs.pop('label_list', 'label_list.txt'), **kwargs)
    ds.parse_dataset()
    return ds


def test_voc_boxes_classes_and_difficult(tmp_path):
    voc_set(tmp_path, [[('car', 10, 5, 30, 35, 1), ('person', 0.5, 2, 4.5, 9, None)],
                       [('person', 1, 1, 8, 8, 0)]])
    ds = voc(tmp_path)
    assert ds.cname2cid == {'person': 0, 'car': 1}
    assert len(ds) == 2
    rec = ds.roidbs[0]
    assert rec['im_file'] == os.path.join(str(tmp_path), 'JPEGImages', '0.png')
    assert rec['im_id'].tolist() == [0] and (rec['h'], rec['w']) == (64., 96.)
    # coordinates as written: PaddleDetection subtracts nothing
    np.testing.assert_array_equal(rec['gt_bbox'], [[10, 5, 30, 35], [0.5, 2, 4.5, 9]])
    assert rec['gt_class'].tolist() == [[1], [0]]
    assert rec['difficult'].tolist() == [[1], [0]]  # a missing <difficult> reads 0
    assert ds.roidbs[1]['im_id'].tolist() == [1]
    assert ds.get_label_list() == os.path.join(str(tmp_path), 'label_list.txt')


def test_voc_clips_to_last_pixel_and_drops_degenerate_boxes(tmp_path, logs):
    # 96 x 64 image: PaddleDetection clips x2 to w - 1 = 95 and y2 to h - 1 = 63
    voc_set(tmp_path, [[('car', -4, 10, 120, 80, 0), ('car', 20, 20, 20, 30, 0),
                        ('car', 100, 10, 110, 20, 0)]])
    ds = voc(tmp_path)
    np.testing.assert_array_equal(ds.roidbs[0]['gt_bbox'], [[0, 10, 95, 63]])
    xml = os.path.join(str(tmp_path), 'Annotations', '0.xml')
    assert any('dropped 2 boxes' in m and xml in m for m in warnings_of(logs))


def test_voc_xml_id_and_default_voc_labels(tmp_path):
    voc_set(tmp_path, [[('dog', 1, 1, 8, 8, 0)]])
    write_voc_xml(os.path.join(str(tmp_path), 'Annotations', '0.xml'),
                  [('dog', 1, 1, 8, 8, 0)], im_id=42)
    ds = voc(tmp_path, label_list=None)
    assert ds.roidbs[0]['im_id'].tolist() == [42]
    assert ds.roidbs[0]['gt_class'].tolist() == [[11]]  # 'dog' is VOC class 11
    assert ds.get_label_list() is None


def test_voc_empty_images_and_allow_empty(tmp_path):
    voc_set(tmp_path, [[('car', 1, 1, 8, 8, 0)], [], [('car', 200, 1, 208, 8, 0)],
                       [('car', 2, 2, 9, 9, 0)]])
    # without <id>, an image's id is its position among the parsed files, empty ones included
    assert [r['im_id'][0] for r in voc(tmp_path).roidbs] == [0, 3]
    ds = voc(tmp_path, allow_empty=True)
    assert [r['im_id'][0] for r in ds.roidbs] == [0, 3, 1, 2]  # empty images last
    assert [r['gt_bbox'].shape[0] for r in ds.roidbs] == [1, 1, 0, 0]
    # int(2 * 0.2 / 0.8) = int(0.5) = 0 of the 2 empty images
    assert len(voc(tmp_path, allow_empty=True, empty_ratio=0.2)) == 2


def test_voc_bad_input_is_named(tmp_path):
    voc_set(tmp_path, [[('bus', 1, 1, 8, 8, 0)]])
    xml = os.path.join(str(tmp_path), 'Annotations', '0.xml')
    with pytest.raises(ValueError, match="class 'bus' is not in") as e:
        voc(tmp_path)
    assert xml in str(e.value)
    with pytest.raises(FileNotFoundError, match='nolabels.txt'):
        voc(tmp_path, label_list='nolabels.txt')
    with pytest.raises(FileNotFoundError, match='trainval.txt'):
        VOCDataSet(str(tmp_path / 'elsewhere'), anno_path='trainval.txt').parse_dataset()
    (tmp_path / 'trainval.txt').write_text('')
    with pytest.raises(ValueError, match='trainval.txt.* is empty'):
        voc(tmp_path)
    (tmp_path / 'trainval.txt').write_text('JPEGImages/0.png\n')
    with pytest.raises(ValueError, match=r'trainval.txt:1: expected'):
        voc(tmp_path)


def test_voc_missing_files_skipped_and_nothing_usable_is_an_error(tmp_path, logs):
    voc_set(tmp_path, [[('car', 1, 1, 8, 8, 0)], [('car', 1, 1, 8, 8, 0)]])
    gone = os.path.join(str(tmp_path), 'JPEGImages', '1.png')
    os.remove(gone)
    assert len(voc(tmp_path)) == 1
    assert any(gone in m for m in warnings_of(logs))
    os.remove(os.path.join(str(tmp_path), 'Annotations', '0.xml'))
    with pytest.raises(ValueError, match='no usable image in .*trainval.txt'):
        voc(tmp_path)


def test_voc_from_yaml_tag(tmp_path):
    voc_set(tmp_path, [[('car', 1, 1, 8, 8, 0)]])
    cfg_path = tmp_path / 'voc.yml'
    cfg_path.write_text(f"EvalDataset: !VOCDataSet {{dataset_dir: {tmp_path}, anno_path: "
                        f"trainval.txt, label_list: label_list.txt, data_fields: {VOC_FIELDS}}}\n")
    ds = create('EvalDataset', load_config(str(cfg_path)))
    assert isinstance(ds, VOCDataSet)
    assert ds.label_list == 'label_list.txt' and ds.data_fields == VOC_FIELDS
    assert len(ds) == 1


# ---------------------------------------------------------------------------------------------
# ImageFolder and categories


def test_image_folder_set_images(tmp_path):
    for name in ('b.jpg', 'a.PNG', 'sub/c.bmp', 'notes.txt'):
        path = tmp_path / 'imgs' / name
        os.makedirs(path.parent, exist_ok=True)
        path.write_bytes(b'x')
    single = tmp_path / 'one.jpeg'
    single.write_bytes(b'x')
    ds = ImageFolder(anno_path='label_list.txt')
    ds.set_images([str(tmp_path / 'imgs'), str(single)])
    files = [r['im_file'] for r in ds.roidbs]
    assert files == [str(tmp_path / 'imgs' / n) for n in ('a.PNG', 'b.jpg', 'sub/c.bmp')] + \
        [str(single)]
    assert [r['im_id'].tolist() for r in ds.roidbs] == [[0], [1], [2], [3]]
    assert ds.get_imid2path() == dict(enumerate(files))
    assert ds.get_anno() == 'label_list.txt' and ds.get_label_list() == 'label_list.txt'
    assert len(ds) == 4


def test_image_folder_from_config_and_errors(tmp_path):
    (tmp_path / 'x.jpg').write_bytes(b'x')
    (tmp_path / 'y.jpg').write_bytes(b'x')
    ds = ImageFolder(dataset_dir=str(tmp_path), image_dir='.', anno_path='a.json', sample_num=1)
    assert len(ds) == 1 and ds.get_anno() == os.path.join(str(tmp_path), 'a.json')
    with pytest.raises(FileNotFoundError, match='nothere.jpg'):
        ImageFolder().set_images([str(tmp_path / 'nothere.jpg')])
    (tmp_path / 'notes.txt').write_text('')
    with pytest.raises(ValueError, match='notes.txt.* is not an image'):
        ImageFolder().set_images([str(tmp_path / 'notes.txt')])
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(ValueError, match='no image file found'):
        ImageFolder().set_images([str(tmp_path / 'empty')])


def test_get_categories(tmp_path):
    anno = write_coco(tmp_path, [img(1)], [ann(1, 1, 3, [1, 1, 5, 5])], CATS)
    clsid2catid, catid2name = get_categories('COCO', str(tmp_path / anno))
    assert clsid2catid == {0: 7, 1: 3} and catid2name == {7: 'cat', 3: 'dog'}
    (tmp_path / 'labels.txt').write_text('background\ncat\ndog\n')
    for metric in ('COCO', 'VOC'):  # a leading 'background' line is dropped
        assert get_categories(metric, str(tmp_path / 'labels.txt')) == \
            ({0: 0, 1: 1}, {0: 'cat', 1: 'dog'})
    clsid2catid, catid2name = get_categories('COCO', None)  # COCO 2017 defaults
    assert len(clsid2catid) == 80 and clsid2catid[11] == 13 and clsid2catid[79] == 90
    assert catid2name[1] == 'person' and catid2name[90] == 'toothbrush'
    clsid2catid, catid2name = get_categories('VOC', str(tmp_path / 'missing.txt'))
    assert len(catid2name) == 20 and catid2name[14] == 'person'
    with pytest.raises(ValueError, match='unknown metric type'):
        get_categories('WiderFace')


# ---------------------------------------------------------------------------------------------
# PaddleDetection 2.6 parity on the files of tests/data/gen_datasets_golden.py


def _golden_module():
    path = os.path.join(os.path.dirname(__file__), 'data', 'gen_datasets_golden.py')
    spec = importlib.util.spec_from_file_location('gen_datasets_golden', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_records_equal_paddledetection_26(tmp_path):
    gen = _golden_module()
    with open(os.path.join(os.path.dirname(__file__), 'data',
                           'ppdet26_datasets_golden.json')) as f:
        golden = json.load(f)
    gen.build_files(str(tmp_path))
    for kind, cls, kwargs in (('coco', COCODataSet, gen.coco_kwargs),
                              ('voc', VOCDataSet, gen.voc_kwargs)):
        assert [g['case'] for g in golden[kind]] == \
            [json.loads(json.dumps(c)) for c in getattr(gen, f'{kind.upper()}_CASES')]
        for expected in golden[kind]:
            ds = cls(**kwargs(str(tmp_path), expected['case']))
            ds.parse_dataset()
            got = json.loads(json.dumps(gen.summarize(ds, str(tmp_path))))
            assert got == {k: v for k, v in expected.items() if k != 'case'}, expected['case']
