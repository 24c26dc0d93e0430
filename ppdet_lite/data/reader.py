"""Readers: TrainReader / EvalReader / TestReader, PaddleDetection's reader sections on
``paddle.io.DataLoader``.

A reader section lists sample transforms (run per record in ``dataset[idx]``) and batch transforms
(run in the collate, then the batch is stacked)::

    TrainReader:
      sample_transforms: [{Decode: {}}, {RandomFlip: {prob: 0.5}}]
      batch_transforms: [{BatchRandomResize: {target_size: [320, 416], random_size: true,
                          random_interp: true, keep_ratio: false}}, {NormalizeImage: {}},
                         {Permute: {}}, {PadGT: {}}]
      batch_size: 8
      shuffle: true
      drop_last: true

``create('TrainReader')(dataset, worker_num)`` returns the reader, iterable over batches: dicts of
paddle Tensors (``image [B, 3, H, W]`` float32, ``im_shape`` / ``scale_factor [B, 2]`` float32,
``im_id [B, 1]`` int64, ``gt_bbox [B, n, 4]`` float32, ``gt_class [B, n, 1]`` int32,
``pad_gt_mask [B, n, 1]`` float32, ``is_crowd`` / ``difficult [B, n, 1]`` int32, ``gt_score
[B, n, 1]`` float32 after Mixup).

Determinism: batches come from ``paddle.io.DistributedBatchSampler`` (one rank when not
distributed), whose shuffle is seeded by its epoch. Each pass over the reader first gives that
epoch to the dataset, which seeds the augmentation of record ``idx`` from (seed, epoch, idx), and to
the workers' start-up seeding; so a pass is a function of the epoch alone, whatever
``worker_num``. ``reader.set_epoch(epoch)`` sets the epoch explicitly (resume; and without
``shuffle`` the sampler does not advance by itself, so call it every epoch).
``worker_num: 0`` loads in the calling thread (errors surface there); ``worker_num > 0`` uses
Paddle's worker processes. (PaddleDetection 2.6 ``ppdet/data/reader.py``.)
"""

import difflib
import inspect
import numbers
import random
import shutil
import sys

import numpy as np
import paddle
from paddle.io import DataLoader, DistributedBatchSampler

from ppdet_lite.core.workspace import ConfigError, get_registered, register
from ppdet_lite.utils.logger import get_logger

from .transforms.base import BaseOperator
from .transforms.loading import ImageDecodeError

__all__ = ['Compose', 'BatchCompose', 'BaseDataLoader', 'TrainReader', 'EvalReader',
           'TestReader', 'BATCH_DTYPES']

logger = get_logger(__name__)

# dtypes of the stacked batch fields the model and metrics rely on
BATCH_DTYPES = {
    'image': np.float32, 'im_shape': np.float32, 'scale_factor': np.float32, 'im_id': np.int64,
    'gt_bbox': np.float32, 'gt_class': np.int32, 'pad_gt_mask': np.float32,
    'is_crowd': np.int32, 'difficult': np.int32, 'gt_score': np.float32,
}
# sample fields only transforms use; dropped before collating, as PaddleDetection does
_EXTRA_KEYS = ('h', 'w', 'flipped')
# PaddleDetection disables shared memory below 1 GB of /dev/shm
_MIN_SHM_BYTES = 1024 ** 3


def _transform_names():
    """Names of every transform class (subclasses of BaseOperator, user-defined ones included)."""
    names, todo = set(), [BaseOperator]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            names.add(sub.__name__)
            todo.append(sub)
    return sorted(names)


def _build_transform(entry, where, num_classes):
    """One ``{Name: {kwargs}}`` entry -> the transform object; ConfigError naming ``where``."""
    if not (isinstance(entry, dict) and len(entry) == 1):
        raise ConfigError(f'{where}: each transform must be a single-key mapping '
                          f'{{Name: {{args}}}}, got {entry!r}')
    (name, kwargs), = entry.items()
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, dict):
        raise ConfigError(f'{where}: {name} arguments must be a mapping, got {kwargs!r}')
    known = _transform_names()
    if name not in known:
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f'; close names: {", ".join(close)}' if close else ''
        raise ConfigError(f'{where}: unknown transform {name!r}{hint} '
                          f'(known: {", ".join(known)})')
    cls = get_registered(name)
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for key in kwargs:
        if key not in params and not takes_any:
            close = difflib.get_close_matches(str(key), [p for p in params if p != 'self'], n=1)
            hint = f'; did you mean {close[0]!r}?' if close else ''
            raise ConfigError(f'{where}: {name} has no argument {key!r}{hint}')
    try:
        op = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f'{where}: building {name} failed: {e}') from e
    if hasattr(op, 'num_classes'):
        op.num_classes = num_classes
    return op


class Compose:
    """The sample transforms of a reader, applied in order to one record dict.

    A transform is a registered subclass of ``transforms.BaseOperator``, so user-defined ops
    work once their module is imported.

    Args:
        transforms (list[dict]): ``[{Name: {kwargs}}, ...]``.
        num_classes (int): given to transforms that have a ``num_classes`` attribute.
        where (str): config location for error messages (e.g. ``TrainReader.sample_transforms``).
    Raises:
        ConfigError: an entry that is not ``{Name: {kwargs}}``, an unknown transform (with the
            close names) or argument, or a constructor that rejects its arguments.
    """

    def __init__(self, transforms, num_classes=80, where='sample_transforms'):
        if not isinstance(transforms, (list, tuple)):
            raise ConfigError(f'{where} must be a list of {{Name: {{args}}}} entries, got '
                              f'{transforms!r}')
        self.transforms = [_build_transform(t, f'{where}[{i}]', num_classes)
                           for i, t in enumerate(transforms)]

    def __call__(self, data):
        for op in self.transforms:
            try:
                data = op(data)
            except ImageDecodeError:
                raise  # the dataset skips the image and names it
            except Exception:
                logger.warning(f'transform {op!r} failed on {_describe(data)}')
                raise
        return data


def _describe(data):
    samples = data if isinstance(data, (list, tuple)) else [data]
    ids = [str(np.asarray(s.get('im_id', '?')).ravel().tolist()) for s in samples
           if isinstance(s, dict)]
    return f'im_id {", ".join(ids)}'


class BatchCompose(Compose):
    """The batch transforms, then the collate: ``list[sample dict] -> dict of numpy arrays``.

    With ``collate_batch`` every field is stacked along a new first axis and the fields of
    ``BATCH_DTYPES`` are cast to their dtype; fields of unequal shapes are an error (ValueError
    naming the field and shapes: box fields need ``PadGT``). Without it the per-box fields
    (``gt_*``, ``is_crowd``, ``difficult``) stay lists of per-sample arrays, as in PaddleDetection.
    Strings (e.g. ``im_file`` when Decode did not run) stay lists.
    """

    def __init__(self, transforms, num_classes=80, collate_batch=True, where='batch_transforms'):
        super().__init__(transforms, num_classes, where)
        self.collate_batch = collate_batch

    def __call__(self, samples):
        samples = super().__call__(list(samples))
        for sample in samples:
            for key in _EXTRA_KEYS:
                sample.pop(key, None)
        return {key: self._collate_field(key, [s[key] for s in samples]) for key in samples[0]}

    def _collate_field(self, key, values):
        if isinstance(values[0], (str, bytes)):
            return values
        per_box = key.startswith('gt_') or key in ('is_crowd', 'difficult')
        dtype = BATCH_DTYPES.get(key)
        if not self.collate_batch and per_box:
            return [np.asarray(v, dtype=dtype) for v in values]
        if not all(isinstance(v, (np.ndarray, numbers.Number)) for v in values):
            raise TypeError(f'cannot batch field {key!r}: values of type '
                            f'{sorted({type(v).__name__ for v in values})}')
        shapes = {np.shape(v) for v in values}
        if len(shapes) > 1:
            hint = ' (add PadGT to batch_transforms)' if per_box else ''
            raise ValueError(f'cannot stack field {key!r}: shapes differ across the batch '
                             f'{[np.shape(v) for v in values]}{hint}')
        return np.stack(values).astype(dtype or np.asarray(values[0]).dtype, copy=False)


class _WorkerInit:
    """``worker_init_fn`` of loader worker ``k``: seeds ``random`` / ``np.random`` from
    (seed, epoch, k), so anything drawn outside the dataset's per-sample seeding is reproducible
    too."""

    def __init__(self, seed=0):
        self.seed = seed
        self.epoch = 0

    def __call__(self, worker_id):
        seed = int(np.random.SeedSequence([self.seed, self.epoch, worker_id]).generate_state(1)[0])
        random.seed(seed)
        np.random.seed(seed)


class _InProcessLoader:
    """``worker_num: 0``: load each batch in the calling thread when it is asked for.

    Paddle's own single-process DataLoader fetches in a helper thread, and an exception there
    (a transform rejecting a sample, a collate error) leaves the consumer blocked forever; here
    errors reach the caller. Batches are the same: the collate's numpy arrays as Tensors.
    """

    def __init__(self, dataset, batch_sampler, collate_fn):
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        for indices in self.batch_sampler:
            batch = self.collate_fn([self.dataset[i] for i in indices])
            yield {key: _to_tensors(value) for key, value in batch.items()}


def _to_tensors(value):
    if isinstance(value, np.ndarray):
        return paddle.to_tensor(value)
    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        return [paddle.to_tensor(v) for v in value]
    return value


def _shared_memory_ok():
    if sys.platform in ('win32', 'darwin'):
        return False  # no worker processes with shared memory there
    try:
        size = shutil.disk_usage('/dev/shm').total
    except OSError:
        return False
    if size < _MIN_SHM_BYTES:
        logger.warning('shared memory (/dev/shm) is smaller than 1 GB: use_shared_memory disabled')
        return False
    return True


class BaseDataLoader:
    """A reader: the transforms and batching of one phase, and the loader over a dataset.

    Args:
        sample_transforms (list[dict]): ``[{Name: {kwargs}}, ...]`` run per record.
        batch_transforms (list[dict]): run on each list of samples before stacking.
        batch_size (int): samples per batch (per rank when distributed).
        shuffle (bool): reshuffle every epoch (seeded by the epoch).
        drop_last (bool): drop the last incomplete batch.
        num_classes (int): given to transforms that take it (shared key).
        collate_batch (bool): stack per-box fields too (needs PadGT); see ``BatchCompose``.
        use_shared_memory (bool): pass batches from workers through shared memory (disabled
            when /dev/shm is under 1 GB, as PaddleDetection does).
        **kwargs: given to ``dataset.set_kwargs`` (e.g. ``mixup_epoch``).
    Raises:
        ConfigError: a malformed transform list, naming the reader key (see ``Compose``).
    """

    def __init__(self, sample_transforms=(), batch_transforms=(), batch_size=1, shuffle=False,
                 drop_last=False, num_classes=80, collate_batch=True, use_shared_memory=False,
                 **kwargs):
        name = type(self).__name__
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ConfigError(f'{name}.batch_size must be a positive int, got {batch_size!r}')
        self._sample_transforms = Compose(sample_transforms, num_classes,
                                          f'{name}.sample_transforms')
        self._batch_transforms = BatchCompose(batch_transforms, num_classes, collate_batch,
                                              f'{name}.batch_transforms')
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.use_shared_memory = use_shared_memory
        self.kwargs = kwargs
        self.dataset = None
        self.dataloader = None
        self._batch_sampler = None
        self._worker_init = None

    def __call__(self, dataset, worker_num, batch_sampler=None, return_list=False):
        """Attach ``dataset`` and build the loader; returns the reader itself (iterable).

        Args:
            dataset: a DetDataset (``parse_dataset``, ``set_transform``, ``set_kwargs``,
                ``set_epoch``).
            worker_num (int): loader worker processes (0: load in the calling thread, see
                ``_InProcessLoader``).
            batch_sampler: replaces the default ``DistributedBatchSampler``.
            return_list (bool): passed to ``paddle.io.DataLoader`` (dicts are returned either way).
        """
        self.dataset = dataset
        dataset.parse_dataset()
        dataset.set_transform(self._sample_transforms)
        dataset.set_kwargs(**self.kwargs)
        if batch_sampler is None:
            batch_sampler = DistributedBatchSampler(dataset, batch_size=self.batch_size,
                                                    shuffle=self.shuffle,
                                                    drop_last=self.drop_last)
        self._batch_sampler = batch_sampler
        use_shm = bool(self.use_shared_memory) and worker_num > 0 and _shared_memory_ok()
        self._worker_init = _WorkerInit(getattr(dataset, 'seed', 0))
        if worker_num > 0:
            self.dataloader = DataLoader(
                dataset=dataset, batch_sampler=batch_sampler, collate_fn=self._batch_transforms,
                num_workers=worker_num, return_list=return_list, use_shared_memory=use_shm,
                worker_init_fn=self._worker_init)
        else:
            self.dataloader = _InProcessLoader(dataset, batch_sampler, self._batch_transforms)
        return self

    @property
    def batch_sampler(self):
        """The batch sampler in use (``set_epoch`` on it is seen by the next pass)."""
        return self._batch_sampler

    def set_epoch(self, epoch):
        """Make the next pass epoch ``epoch``: its shuffle order and its augmentation."""
        self._check_called()
        if hasattr(self._batch_sampler, 'set_epoch'):
            self._batch_sampler.set_epoch(epoch)
        self._sync_epoch(epoch)

    def _sync_epoch(self, epoch):
        self.dataset.set_epoch(epoch)
        self._worker_init.epoch = epoch

    def _check_called(self):
        if self.dataloader is None:
            raise RuntimeError(f'{type(self).__name__}: call reader(dataset, worker_num) first')

    def __len__(self):
        self._check_called()
        return len(self._batch_sampler)

    def __iter__(self):
        self._check_called()
        # the sampler moves to the next epoch on each pass; the dataset and workers follow it
        epoch = getattr(self._batch_sampler, 'epoch', None)
        if epoch is not None:
            self._sync_epoch(epoch)
        return iter(self.dataloader)


@register
class TrainReader(BaseDataLoader):
    """Training reader: PaddleDetection's defaults ``shuffle=True``, ``drop_last=True``."""
    __shared__ = ['num_classes']

    def __init__(self, sample_transforms=(), batch_transforms=(), batch_size=1, shuffle=True,
                 drop_last=True, num_classes=80, collate_batch=True, use_shared_memory=False,
                 **kwargs):
        super().__init__(sample_transforms, batch_transforms, batch_size, shuffle, drop_last,
                         num_classes, collate_batch, use_shared_memory, **kwargs)


@register
class EvalReader(BaseDataLoader):
    """Evaluation reader: ``shuffle=False``, ``drop_last=True`` (PaddleDetection's defaults;
    set ``drop_last: false`` or ``batch_size: 1`` to evaluate every image)."""
    __shared__ = ['num_classes']

    def __init__(self, sample_transforms=(), batch_transforms=(), batch_size=1, shuffle=False,
                 drop_last=True, num_classes=80, collate_batch=True, use_shared_memory=False,
                 **kwargs):
        super().__init__(sample_transforms, batch_transforms, batch_size, shuffle, drop_last,
                         num_classes, collate_batch, use_shared_memory, **kwargs)


@register
class TestReader(BaseDataLoader):
    """Inference reader: ``shuffle=False``, ``drop_last=False``.

    Args:
        inputs_def (dict | None): e.g. ``{image_shape: [3, 640, 640]}``, the export input shape
            (kept as ``self.inputs_def``).
    """
    __shared__ = ['num_classes']

    def __init__(self, sample_transforms=(), batch_transforms=(), batch_size=1, shuffle=False,
                 drop_last=False, num_classes=80, collate_batch=True, use_shared_memory=False,
                 inputs_def=None, **kwargs):
        super().__init__(sample_transforms, batch_transforms, batch_size, shuffle, drop_last,
                         num_classes, collate_batch, use_shared_memory, **kwargs)
        self.inputs_def = inputs_def
