"""DetDataset: the base of every detection dataset (PaddleDetection 2.6
``ppdet/data/source/dataset.py``).

A dataset parses its annotation file once into ``self.roidbs``, a list of records (one per image,
numpy arrays in original-image pixels; see ``ppdet_lite/data/datasets/__init__.py``), and serves
``dataset[idx]``: a deep copy of record ``idx`` passed through the reader's transform.

Two behaviours go beyond PaddleDetection:
- Determinism: before the transform runs, Python's ``random`` and ``np.random`` are seeded from
  ``(seed, epoch, idx)``, so the augmentation of a sample is a pure function of those three numbers,
  whatever the number of loader workers and whether training was resumed.
- Corrupt images: a transform raising ``ImageDecodeError`` does not stop training; the file is named
  in a warning (once per file) and the next index is served instead.
"""

import copy
import os
import random

import numpy as np
from paddle.io import Dataset

from ppdet_lite.core.workspace import serializable
from ppdet_lite.data.transforms.loading import ImageDecodeError
from ppdet_lite.utils.logger import get_logger

__all__ = ['DetDataset', 'sample_seed', 'name_some']

logger = get_logger(__name__)

# How many files a warning or error names before saying "and N more".
_MAX_NAMED = 5


def name_some(items):
    """'a, b, c, d, e and 3 more': the first few of ``items`` for a message."""
    items = [str(i) for i in items]
    more = f' and {len(items) - _MAX_NAMED} more' if len(items) > _MAX_NAMED else ''
    return ', '.join(items[:_MAX_NAMED]) + more


def warn_skipped(anno_path, missing, dropped):
    """One warning per kind for a whole annotation file: listed image files that do not exist
    (``missing``: paths) and boxes dropped for zero area or lying outside their image
    (``dropped``: the file of each dropped box)."""
    if missing:
        logger.warning(f'{anno_path}: {len(missing)} listed files do not exist and their images '
                       f'are skipped: {name_some(missing)}')
    if dropped:
        files = sorted(set(dropped))
        logger.warning(f'{anno_path}: dropped {len(dropped)} boxes with zero area or outside '
                       f'the image, in {len(files)} files: {name_some(files)}')


def sample_seed(seed, epoch, idx):
    """The 32-bit seed of sample ``idx`` in epoch ``epoch`` (``np.random.SeedSequence`` mixing).

    Mixing through SeedSequence, rather than e.g. ``seed + epoch * n + idx``, keeps nearby triples
    from giving overlapping random streams.
    """
    return int(np.random.SeedSequence([int(seed), int(epoch), int(idx)]).generate_state(1)[0])


@serializable
class DetDataset(Dataset):
    """Base detection dataset with PaddleDetection 2.6's arguments.

    Args:
        dataset_dir (str): root directory of the dataset ('' when None).
        image_dir (str): image directory, relative to ``dataset_dir``.
        anno_path (str): annotation file, relative to ``dataset_dir``.
        data_fields (list[str]): record keys to emit, as PaddleDetection: 'image' brings
            im_file / im_id / h / w, and each of gt_bbox, gt_class, is_crowd, difficult is
            emitted only when listed.
        sample_num (int): load only the first ``sample_num`` images; -1 loads all.
        use_default_label (bool): kept for PaddleDetection configs; unused.
        repeat (int): the dataset is iterated ``repeat`` times per epoch (len multiplies).

    Attributes set later (PaddleDetection's reader protocol): ``set_transform(fn)``,
    ``set_kwargs(seed=..., mixup_epoch=..., cutmix_epoch=..., mosaic_epoch=...)``,
    ``set_epoch(epoch_id)``.
    """

    def __init__(self,
                 dataset_dir=None,
                 image_dir=None,
                 anno_path=None,
                 data_fields=['image'],
                 sample_num=-1,
                 use_default_label=None,
                 repeat=1,
                 **kwargs):
        super().__init__()
        self.dataset_dir = dataset_dir if dataset_dir is not None else ''
        self.anno_path = anno_path
        self.image_dir = image_dir if image_dir is not None else ''
        self.data_fields = list(data_fields)
        self.sample_num = sample_num
        self.use_default_label = use_default_label
        if int(repeat) < 1:
            raise ValueError(f'{type(self).__name__}: repeat must be >= 1, got {repeat!r}')
        self.repeat = int(repeat)
        self.roidbs = None
        self.transform = None
        self.seed = 0
        self.mixup_epoch = -1
        self.cutmix_epoch = -1
        self.mosaic_epoch = -1
        self._epoch = 0
        self._warned_files = set()

    # -- PaddleDetection's reader protocol -----------------------------------------------------

    def __call__(self, *args, **kwargs):
        """Return self: PaddleDetection code writes ``create('TrainDataset')()``."""
        return self

    def parse_dataset(self):
        """Build ``self.roidbs`` from the annotation file (subclasses; done once)."""
        raise NotImplementedError(f'{type(self).__name__} does not implement parse_dataset')

    def set_transform(self, transform):
        """``transform(sample: dict) -> dict``, applied in ``__getitem__``."""
        self.transform = transform

    def set_kwargs(self, **kwargs):
        """Reader options: ``seed`` (augmentation seed, default 0) and PaddleDetection's
        ``mixup_epoch`` / ``cutmix_epoch`` / ``mosaic_epoch`` (-1 = off; see ``__getitem__``)."""
        self.seed = int(kwargs.get('seed', self.seed))
        self.mixup_epoch = kwargs.get('mixup_epoch', -1)
        self.cutmix_epoch = kwargs.get('cutmix_epoch', -1)
        self.mosaic_epoch = kwargs.get('mosaic_epoch', -1)

    def set_epoch(self, epoch_id):
        self._epoch = int(epoch_id)

    def check_or_download_dataset(self):
        """PaddleDetection's hook; nothing is downloaded here (offline rule), so it only checks
        that ``dataset_dir`` exists when one is given."""
        if self.dataset_dir and not os.path.isdir(self.dataset_dir):
            raise FileNotFoundError(f'{type(self).__name__}: dataset_dir {self.dataset_dir!r} '
                                    f'does not exist (nothing is downloaded: prepare the data '
                                    f'first)')

    def get_anno(self):
        """The annotation file path (``dataset_dir/anno_path``), or None without ``anno_path``."""
        if self.anno_path is None:
            return None
        return os.path.join(self.dataset_dir, self.anno_path)

    def get_imid2path(self):
        """``{image id: image file}`` of the parsed records."""
        self._ensure_parsed()
        return {int(r['im_id'][0]): r['im_file'] for r in self.roidbs if 'im_id' in r}

    # -- indexing -----------------------------------------------------------------------------

    def _ensure_parsed(self):
        if self.roidbs is None:
            self.parse_dataset()

    def __len__(self):
        self._ensure_parsed()
        return len(self.roidbs) * self.repeat

    def __getitem__(self, idx):
        """The transformed deep copy of record ``idx % len(roidbs)``.

        Seeds ``random`` and ``np.random`` with ``sample_seed(seed, epoch, idx)`` first. When a
        mix is active (PaddleDetection's rule: ``X_epoch == 0`` or ``epoch < X_epoch``), the
        transform receives a list: the record plus one random record (mixup, cutmix) or four
        (mosaic), drawn from the seeded generator.

        Raises:
            RuntimeError: every image of the dataset raised ImageDecodeError (names some of them).
        """
        self._ensure_parsed()
        n = len(self.roidbs)
        idx = int(idx) % n
        seed = sample_seed(self.seed, self._epoch, idx)
        random.seed(seed)
        np.random.seed(seed)
        failed = []
        # bounded: each record is tried at most once, starting at idx
        for k in range(n):
            j = (idx + k) % n
            try:
                return self._transform(self._gather(j))
            except ImageDecodeError as e:
                im_file = self.roidbs[j].get('im_file', f'record {j}')
                failed.append(im_file)
                if im_file not in self._warned_files:
                    self._warned_files.add(im_file)
                    logger.warning(f'skipping unreadable image {im_file} (serving the next '
                                   f'sample instead): {e}')
        raise RuntimeError(f'{type(self).__name__}: none of the {n} images can be read '
                           f'({name_some(failed)}); check the files under '
                           f'{os.path.join(self.dataset_dir, self.image_dir)!r}')

    def _mix_active(self, mix_epoch):
        return mix_epoch == 0 or self._epoch < mix_epoch

    def _gather(self, idx):
        """Deep copies of the record(s) the transform needs for sample ``idx``."""
        n = len(self.roidbs)
        roidb = copy.deepcopy(self.roidbs[idx])
        if self._mix_active(self.mixup_epoch) or self._mix_active(self.cutmix_epoch):
            return [roidb, copy.deepcopy(self.roidbs[np.random.randint(n)])]
        if self._mix_active(self.mosaic_epoch):
            return [roidb] + [copy.deepcopy(self.roidbs[np.random.randint(n)]) for _ in range(4)]
        return roidb

    def _transform(self, sample):
        return sample if self.transform is None else self.transform(sample)

    # -- shared by the annotated datasets -----------------------------------------------------

    def _sample_empty(self, empty_records, num_records, empty_ratio):
        """PaddleDetection's ``_sample_empty``: keep ``int(num_records * r / (1 - r))`` of the
        images without boxes (at most all) for ``empty_ratio`` r in [0, 1); keep all otherwise.

        The choice uses ``random.Random(self.seed)``, not the global generator, so the parsed
        dataset is reproducible.
        """
        if empty_ratio < 0. or empty_ratio >= 1.:
            return empty_records
        keep = min(int(num_records * empty_ratio / (1. - empty_ratio)), len(empty_records))
        return random.Random(self.seed).sample(empty_records, keep)
