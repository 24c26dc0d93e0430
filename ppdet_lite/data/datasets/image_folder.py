"""ImageFolder: images to run inference on (PaddleDetection 2.6 ``ppdet/data/source/dataset.py``).

No annotations: records are ``{'im_id': int64 [1] (0, 1, ...), 'im_file': str}``. The images come
from ``image_dir`` (a directory, searched recursively, an image file, or a list of either) or from
``set_images(list)``. ``anno_path`` (a COCO json or a label_list.txt) only names the classes,
read by ``get_categories`` (``ppdet_lite/data/datasets/category.py``).
"""

import os

import numpy as np

from ppdet_lite.core.workspace import register, serializable
from .dataset import DetDataset

__all__ = ['ImageFolder', 'IMAGE_EXTENSIONS']

# PaddleDetection's image extensions (case-insensitive).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def _is_image(path):
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _images_under(directory):
    found = []
    for root, _, names in sorted(os.walk(directory, followlinks=True)):
        found.extend(os.path.join(root, n) for n in sorted(names) if _is_image(n))
    return found


@register
@serializable
class ImageFolder(DetDataset):
    """Inference images.

    Args:
        dataset_dir (str): prefix of relative ``image_dir`` entries and of ``anno_path``.
        image_dir (str | list[str]): directories and/or image files.
        anno_path (str): COCO json or label_list.txt naming the classes (optional).
        sample_num (int): load at most ``sample_num`` images; -1 loads all.
        use_default_label (bool): kept for PaddleDetection configs; unused.

    Raises (from ``parse_dataset`` / ``set_images``):
        FileNotFoundError: a listed directory or file does not exist (named).
        ValueError: a listed file is not an image (by extension), or no image is found.
    """

    def __init__(self,
                 dataset_dir=None,
                 image_dir=None,
                 anno_path=None,
                 sample_num=-1,
                 use_default_label=None,
                 **kwargs):
        super().__init__(dataset_dir, image_dir, anno_path, sample_num=sample_num,
                         use_default_label=use_default_label)
        self._imid2path = {}

    def check_or_download_dataset(self):
        """Nothing to check before the images are set."""

    def get_anno(self):
        """``dataset_dir/anno_path`` (or ``anno_path`` without dataset_dir), or None."""
        if self.anno_path is None:
            return None
        return os.path.join(self.dataset_dir, self.anno_path) if self.dataset_dir \
            else self.anno_path

    def get_label_list(self):
        """PaddleDetection's ImageFolder returns ``anno_path`` as its label list."""
        return self.anno_path

    def get_imid2path(self):
        return dict(self._imid2path)

    def parse_dataset(self):
        if self.roidbs is None:
            self.roidbs = self._load_images()

    def set_images(self, images):
        """Use ``images`` (image files and/or directories) as the dataset."""
        self.image_dir = images
        self.roidbs = self._load_images()

    def _paths(self):
        entries = self.image_dir if isinstance(self.image_dir, (list, tuple)) \
            else [self.image_dir]
        images = []
        for entry in entries:
            path = entry if os.path.isabs(entry) or not self.dataset_dir \
                else os.path.join(self.dataset_dir, entry)
            if os.path.isdir(path):
                images.extend(_images_under(path))
            elif os.path.isfile(path):
                if not _is_image(path):
                    raise ValueError(f'ImageFolder: {path!r} is not an image file (expected one '
                                     f'of {", ".join(IMAGE_EXTENSIONS)})')
                images.append(path)
            else:
                raise FileNotFoundError(f'ImageFolder: {path!r} does not exist')
        return images

    def _load_images(self):
        images = self._paths()
        if 0 < self.sample_num < len(images):
            images = images[:self.sample_num]
        if not images:
            raise ValueError(f'ImageFolder: no image file found in {self.image_dir!r}')
        self._imid2path = dict(enumerate(images))
        return [{'im_id': np.array([i], dtype=np.int64), 'im_file': path}
                for i, path in self._imid2path.items()]
