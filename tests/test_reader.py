"""ppdet_lite.data.reader: readers built from PaddleDetection-style sections over a tiny dataset of
generated 64-96 px images: batch shapes and dtypes, PadGT masks, drop_last, epoch-seeded shuffling,
identical batches with 0 and 2 workers, and clear config errors."""

import copy
import gc
import json
import random
import time

import cv2
import numpy as np
import paddle
import pytest

from ppdet_lite.core.workspace import ConfigError, create, load_config
from ppdet_lite.data import reader as readers

# module access: pytest would collect a class named TestReader
TrainReader, EvalReader = readers.TrainReader, readers.EvalReader

# box counts of the records; record i has BOX_COUNTS[i % 4] boxes
BOX_COUNTS = [2, 0, 3, 1]


class TinyDataset(paddle.io.Dataset):
    """The DetDataset contract in miniature: records, set_transform / set_kwargs / set_epoch, and
    per-sample seeding from (seed, epoch, idx) before the transforms."""

    def __init__(self, root, n=7):
        self.roidbs, self.seed, self._epoch, self.transform, self.kwargs = [], 0, 0, None, {}
        rng = np.random.RandomState(0)
        for i in range(n):
            h, w = 64 + 8 * (i % 3), 96 - 8 * (i % 2)
            path = str(root / f'{i}.png')
            cv2.imwrite(path, rng.randint(0, 255, (h, w, 3)).astype(np.uint8))
            k = BOX_COUNTS[i % 4]
            boxes = np.array([[4 + j, 6, 30 + 5 * j, 40] for j in range(k)], np.float32)
            self.roidbs.append({
                'im_file': path, 'im_id': np.array([i]), 'h': float(h), 'w': float(w),
                'gt_bbox': boxes.reshape(-1, 4), 'gt_class': np.full((k, 1), i % 5, np.int32),
                'is_crowd': np.zeros((k, 1), np.int32)})
        self.parsed = 0

    def parse_dataset(self):
        self.parsed += 1

    def set_transform(self, transform):
        self.transform = transform

    def set_kwargs(self, **kwargs):
        self.kwargs = kwargs

    def set_epoch(self, epoch):
        self._epoch = epoch

    def __len__(self):
        return len(self.roidbs)

    def __getitem__(self, idx):
        seed = int(np.random.SeedSequence([self.seed, self._epoch, idx]).generate_state(1)[0])
        random.seed(seed)
        np.random.seed(seed)
        return self.transform(copy.deepcopy(self.roidbs[idx]))


TRAIN = dict(
    sample_transforms=[{'Decode': {}}, {'RandomFlip': {'prob': 0.5}}],
    batch_transforms=[
        {'BatchRandomResize': {'target_size': [32, 48, 64], 'random_size': True,
                               'random_interp': True, 'keep_ratio': False}},
        {'NormalizeImage': {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
                            'is_scale': True}},
        {'Permute': {}}, {'PadGT': {}}],
    batch_size=3)


def batches(reader):
    return [{k: v.numpy() for k, v in b.items()} for b in reader]


@pytest.fixture
def dataset(tmp_path):
    return TinyDataset(tmp_path)


def test_train_batches_shapes_dtypes_and_masks(dataset):
    reader = TrainReader(**TRAIN)(dataset, 0)
    assert len(reader) == 2                       # 7 samples, batch 3, drop_last: 7 // 3 = 2
    out = batches(reader)
    assert len(out) == 2
    for b in out:
        n = max(BOX_COUNTS[int(i) % 4] for i in b['im_id'][:, 0])
        size = b['image'].shape[2]
        assert b['image'].shape == (3, 3, size, size) and size in (32, 48, 64)
        expected = {'image': ('float32', (3, 3, size, size)), 'im_shape': ('float32', (3, 2)),
                    'scale_factor': ('float32', (3, 2)), 'im_id': ('int64', (3, 1)),
                    'gt_bbox': ('float32', (3, n, 4)), 'gt_class': ('int32', (3, n, 1)),
                    'is_crowd': ('int32', (3, n, 1)), 'pad_gt_mask': ('float32', (3, n, 1))}
        assert {k: (str(v.dtype), v.shape) for k, v in b.items()} == expected
        for row, im_id in enumerate(b['im_id'][:, 0]):
            k = BOX_COUNTS[int(im_id) % 4]
            assert b['pad_gt_mask'][row, :, 0].tolist() == [1] * k + [0] * (n - k)
            assert (b['gt_class'][row, :k, 0] == im_id % 5).all()
            np.testing.assert_array_equal(b['im_shape'][row], [size, size])
            # scale_factor * decoded size = network size
            h, w = dataset.roidbs[im_id]['h'], dataset.roidbs[im_id]['w']
            np.testing.assert_allclose(b['scale_factor'][row] * [h, w], [size, size], rtol=1e-6)
    assert dataset.parsed == 1


def test_drop_last_false_keeps_the_remainder(dataset):
    reader = TrainReader(**dict(TRAIN, drop_last=False))(dataset, 0)
    out = batches(reader)
    assert len(reader) == 3 and [len(b['im_id']) for b in out] == [3, 3, 1]
    assert sorted(np.concatenate([b['im_id'][:, 0] for b in out]).tolist()) == list(range(7))


def test_shuffle_is_a_function_of_the_epoch(tmp_path):
    def order(reader, epoch):
        reader.set_epoch(epoch)
        return [b['im_id'][:, 0].tolist() for b in batches(reader)]

    spec = dict(TRAIN, batch_size=2)
    a = TrainReader(**spec)(TinyDataset(tmp_path), 0)
    b = TrainReader(**spec)(TinyDataset(tmp_path), 0)
    first = order(a, 3)
    assert first == order(b, 3)                    # two loaders, same epoch: same order
    assert first != order(a, 4)                    # another epoch: another order
    assert order(a, 3) == first                    # and back


def test_each_pass_moves_to_the_next_epoch(dataset):
    reader = TrainReader(**TRAIN)(dataset, 0)
    one, two = batches(reader), batches(reader)
    assert dataset._epoch == 1                     # the dataset followed the sampler
    assert [b['im_id'].tolist() for b in one] != [b['im_id'].tolist() for b in two]
    reader.set_epoch(0)
    again = batches(reader)
    for x, y in zip(one, again):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_two_workers_give_the_same_batches_as_none(dataset):
    spec = dict(TRAIN, sample_transforms=TRAIN['sample_transforms'] + [{'RandomDistort': {}}])
    inline = TrainReader(**spec)(dataset, 0)
    workers = TrainReader(**spec)(copy.deepcopy(dataset), 2)
    inline.set_epoch(5)
    workers.set_epoch(5)
    a, b = batches(inline), batches(workers)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_eval_and_test_reader_defaults(dataset):
    ev = EvalReader(sample_transforms=[{'Decode': {}},
                                       {'Resize': {'target_size': [32, 48], 'keep_ratio': False}},
                                       {'NormalizeImage': {}}, {'Permute': {}}], batch_size=2)
    assert (ev.shuffle, ev.drop_last) == (False, True)
    te = readers.TestReader(inputs_def={'image_shape': [3, 32, 48]})
    assert (te.shuffle, te.drop_last, te.batch_size) == (False, False, 1)
    assert te.inputs_def == {'image_shape': [3, 32, 48]}
    tr = TrainReader()
    assert (tr.shuffle, tr.drop_last, tr.batch_size) == (True, True, 1)
    for record in dataset.roidbs:                  # evaluation records without GT
        for key in ('gt_bbox', 'gt_class', 'is_crowd'):
            del record[key]
    out = batches(ev(dataset, 0))
    assert [b['im_id'][:, 0].tolist() for b in out] == [[0, 1], [2, 3], [4, 5]]
    assert out[0]['image'].shape == (2, 3, 32, 48) and out[0]['image'].dtype == np.float32


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
@pytest.mark.parametrize('worker_num', [0, 2])
def test_unequal_box_counts_without_padgt_name_the_field(dataset, worker_num):
    # a failing collate must raise in the caller, not leave the training loop waiting
    reader = EvalReader(sample_transforms=[{'Decode': {}},
                                           {'Resize': {'target_size': 32, 'keep_ratio': False}}],
                        batch_size=2)(dataset, worker_num)
    # with workers Paddle prints the worker's message and raises its own "reader raises" error
    match = "'gt_bbox'.*PadGT" if worker_num == 0 else None
    with pytest.raises(Exception, match=match):
        batches(reader)
    # Paddle's reader thread reports the worker's error when its iterator is collected: let that
    # happen inside this test, whose filter expects it
    gc.collect()
    time.sleep(0.2 * worker_num)


def test_collate_batch_false_keeps_box_lists(dataset):
    reader = TrainReader(**dict(TRAIN, batch_transforms=TRAIN['batch_transforms'][:3],
                                collate_batch=False))(dataset, 0)
    b = next(iter(reader))
    assert isinstance(b['gt_bbox'], list) and len(b['gt_bbox']) == 3
    counts = [BOX_COUNTS[int(i) % 4] for i in b['im_id'].numpy()[:, 0]]
    assert [tuple(g.shape) for g in b['gt_bbox']] == [(k, 4) for k in counts]


def test_unknown_transform_names_the_reader_key_and_close_names():
    with pytest.raises(ConfigError) as e:
        TrainReader(sample_transforms=[{'Decode': {}}, {'RandomFlipp': {}}])
    msg = str(e.value)
    assert 'TrainReader.sample_transforms[1]' in msg and "'RandomFlipp'" in msg
    assert 'close names: RandomFlip' in msg
    with pytest.raises(ConfigError, match=r'EvalReader.batch_transforms\[0\]: PadGT has no '
                                          r"argument 'return_mask'"):
        EvalReader(batch_transforms=[{'PadGT': {'return_mask': True}}])
    with pytest.raises(ConfigError, match=r'sample_transforms\[0\].*single-key'):
        TrainReader(sample_transforms=['Decode'])
    with pytest.raises(ConfigError, match='Resize failed.*target_size'):
        TrainReader(sample_transforms=[{'Resize': {'target_size': 'big', 'keep_ratio': True}}])


def test_reader_from_config_takes_num_classes_and_kwargs(tmp_path, dataset):
    cfg_path = tmp_path / 'reader.yml'
    cfg_path.write_text(
        'num_classes: 3\n'
        'TrainReader:\n'
        '  sample_transforms: [{Decode: {}}, {Resize: {target_size: 32, keep_ratio: false}}]\n'
        '  batch_transforms: [{NormalizeImage: {}}, {Permute: {}}, {PadGT: {}}]\n'
        '  batch_size: 2\n'
        '  use_shared_memory: true\n'
        '  mosaic_epoch: 4\n')
    load_config(str(cfg_path))
    reader = create('TrainReader')
    assert reader.batch_size == 2 and reader.use_shared_memory is True
    reader(dataset, 0)
    assert dataset.kwargs == {'mosaic_epoch': 4}
    assert next(iter(reader))['image'].shape == [2, 3, 32, 32]


def test_ppyoloe_reader_config_builds():
    cfg = load_config('configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml')
    names = [type(op).__name__ for op in create('TrainReader', cfg)._sample_transforms.transforms]
    assert names == ['Decode', 'RandomDistort', 'RandomExpand', 'RandomCrop', 'RandomFlip']
    assert create('TestReader', cfg).inputs_def == {'image_shape': [3, 640, 640]}


def write_coco_set(root, n=6, corrupt=(2,)):
    """``n`` noisy 64 x 96 PNGs with 1-3 boxes each as a COCO file; images in ``corrupt`` hold
    bytes that are not an image."""
    rng = np.random.RandomState(1)
    images, annotations = [], []
    (root / 'images').mkdir()
    for i in range(1, n + 1):
        path = root / 'images' / f'{i}.png'
        if i in corrupt:
            path.write_bytes(b'not a png')
        else:
            cv2.imwrite(str(path), rng.randint(0, 255, (64, 96, 3)).astype(np.uint8))
        images.append({'id': i, 'file_name': f'{i}.png', 'height': 64, 'width': 96})
        for j in range(1 + i % 3):
            annotations.append({'id': len(annotations) + 1, 'image_id': i, 'category_id': 1 + j,
                                'bbox': [5 + 20 * j, 8, 18, 30], 'area': 540, 'iscrowd': 0})
    categories = [{'id': k, 'name': f'c{k}'} for k in (1, 2, 3)]
    (root / 'train.json').write_text(json.dumps(
        {'images': images, 'annotations': annotations, 'categories': categories}))


PPYOLOE_TRAIN = dict(
    sample_transforms=[{'Decode': {}}, {'RandomDistort': {}},
                       {'RandomExpand': {'fill_value': [123.675, 116.28, 103.53]}},
                       {'RandomCrop': {}}, {'RandomFlip': {}}],
    batch_transforms=TRAIN['batch_transforms'], batch_size=2)


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_coco_dataset_pipeline_skips_corrupt_images_and_is_worker_independent(tmp_path):
    from ppdet_lite.data.datasets import COCODataSet

    write_coco_set(tmp_path)

    def loader(worker_num):
        ds = COCODataSet(dataset_dir=str(tmp_path), image_dir='images', anno_path='train.json',
                         data_fields=['image', 'gt_bbox', 'gt_class', 'is_crowd'])
        reader = TrainReader(**PPYOLOE_TRAIN)(ds, worker_num)
        reader.set_epoch(2)
        return batches(reader)

    inline, workers = loader(0), loader(2)
    assert len(inline) == 3                          # 6 records, batch 2
    for x, y in zip(inline, workers):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    ids = np.concatenate([b['im_id'][:, 0] for b in inline]).tolist()
    assert 2 not in ids and len(ids) == 6            # image 2 replaced by the next readable one
    for b in inline:
        size = b['image'].shape[2:]
        boxes, mask = b['gt_bbox'], b['pad_gt_mask'][..., 0] > 0
        assert (boxes[mask][:, 2] <= size[1]).all() and (boxes[mask][:, 3] <= size[0]).all()
        assert (boxes[mask][:, :2] < boxes[mask][:, 2:]).all()
        assert not boxes[~mask].any()


def test_mixup_through_the_reader_while_mixup_epoch_lasts(tmp_path):
    from ppdet_lite.data.datasets import COCODataSet

    write_coco_set(tmp_path, corrupt=())
    ds = COCODataSet(dataset_dir=str(tmp_path), image_dir='images', anno_path='train.json',
                     data_fields=['image', 'gt_bbox', 'gt_class', 'is_crowd'])
    # PaddleDetection's rule: the dataset hands pairs to the transforms while epoch < mixup_epoch
    reader = TrainReader(sample_transforms=[{'Decode': {}}, {'Mixup': {}},
                                            {'Resize': {'target_size': 32, 'keep_ratio': False}}],
                         batch_transforms=[{'Permute': {}}, {'PadGT': {}}], batch_size=3,
                         mixup_epoch=1)(ds, 0)
    reader.set_epoch(0)
    mixed = batches(reader)[0]
    # each record has 1 + id % 3 boxes: a pair has 2 to 6, a single record at most 3
    assert 'gt_score' in mixed and mixed['gt_score'].dtype == np.float32
    counts = mixed['pad_gt_mask'][..., 0].sum(axis=1)
    scores = mixed['gt_score'][..., 0]
    assert (counts >= 2).all()
    for row, n in enumerate(counts.astype(int)):
        assert ((scores[row, :n] > 0) & (scores[row, :n] < 1)).all()
        assert not scores[row, n:].any()
    reader.set_epoch(1)
    assert 'gt_score' not in batches(reader)[0]


def test_mosaic_through_the_reader_while_mosaic_epoch_lasts(tmp_path):
    from ppdet_lite.data.datasets import COCODataSet

    write_coco_set(tmp_path, corrupt=())
    ds = COCODataSet(dataset_dir=str(tmp_path), image_dir='images', anno_path='train.json',
                     data_fields=['image', 'gt_bbox', 'gt_class', 'is_crowd'])
    # the dataset hands five records to the transforms while epoch < mosaic_epoch
    reader = TrainReader(sample_transforms=[{'Decode': {}},
                                            {'Mosaic': {'input_dim': [48, 48]}}],
                         batch_transforms=[{'NormalizeImage': {}}, {'Permute': {}},
                                           {'PadGT': {}}],
                         batch_size=2, mosaic_epoch=1)(ds, 0)
    reader.set_epoch(0)
    out = batches(reader)
    assert [b['image'].shape for b in out] == [(2, 3, 48, 48)] * 3
    for b in out:
        assert b['gt_class'].dtype == np.int32
        boxes = b['gt_bbox'][b['pad_gt_mask'][..., 0] > 0]
        assert (boxes[:, :2] < boxes[:, 2:]).all() and (boxes >= 0).all() and (boxes <= 48).all()
    reader.set_epoch(1)                            # mosaic over: the records' own 64 x 96 size
    assert batches(reader)[0]['image'].shape == (2, 3, 64, 96)


def test_importing_the_data_package_turns_off_opencvs_thread_pool():
    # a pool used before the loader forks its workers can deadlock them (seen in benchmarks)
    import cv2
    import ppdet_lite.data  # noqa: F401
    assert cv2.getNumThreads() == 1
