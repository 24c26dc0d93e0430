"""Class names of a model's outputs (PaddleDetection 2.6 ``ppdet/data/source/category.py``).

``get_categories(metric_type, anno_file)`` returns ``(clsid2catid, catid2name)``: contiguous class
index -> category id, and category id -> name. Tools use it to name detections and to write COCO
results with the annotation file's category ids.
"""

import contextlib
import io
import os

from ppdet_lite.utils.logger import get_logger
from .voc import pascalvoc_label

__all__ = ['get_categories', 'COCO17_CATEGORIES']

logger = get_logger(__name__)

# COCO 2017's 80 categories as (category id, name); ids skip the 11 retired ones.
COCO17_CATEGORIES = [
    (1, 'person'), (2, 'bicycle'), (3, 'car'), (4, 'motorcycle'), (5, 'airplane'), (6, 'bus'),
    (7, 'train'), (8, 'truck'), (9, 'boat'), (10, 'traffic light'), (11, 'fire hydrant'),
    (13, 'stop sign'), (14, 'parking meter'), (15, 'bench'), (16, 'bird'), (17, 'cat'),
    (18, 'dog'), (19, 'horse'), (20, 'sheep'), (21, 'cow'), (22, 'elephant'), (23, 'bear'),
    (24, 'zebra'), (25, 'giraffe'), (27, 'backpack'), (28, 'umbrella'), (31, 'handbag'),
    (32, 'tie'), (33, 'suitcase'), (34, 'frisbee'), (35, 'skis'), (36, 'snowboard'),
    (37, 'sports ball'), (38, 'kite'), (39, 'baseball bat'), (40, 'baseball glove'),
    (41, 'skateboard'), (42, 'surfboard'), (43, 'tennis racket'), (44, 'bottle'),
    (46, 'wine glass'), (47, 'cup'), (48, 'fork'), (49, 'knife'), (50, 'spoon'), (51, 'bowl'),
    (52, 'banana'), (53, 'apple'), (54, 'sandwich'), (55, 'orange'), (56, 'broccoli'),
    (57, 'carrot'), (58, 'hot dog'), (59, 'pizza'), (60, 'donut'), (61, 'cake'), (62, 'chair'),
    (63, 'couch'), (64, 'potted plant'), (65, 'bed'), (67, 'dining table'), (70, 'toilet'),
    (72, 'tv'), (73, 'laptop'), (74, 'mouse'), (75, 'remote'), (76, 'keyboard'),
    (77, 'cell phone'), (78, 'microwave'), (79, 'oven'), (80, 'toaster'), (81, 'sink'),
    (82, 'refrigerator'), (84, 'book'), (85, 'clock'), (86, 'vase'), (87, 'scissors'),
    (88, 'teddy bear'), (89, 'hair drier'), (90, 'toothbrush'),
]


def _from_label_list(path):
    """Index i -> i and i -> name of a label_list.txt; a leading 'background' line is dropped."""
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if names and names[0] == 'background':
        names = names[1:]
    if not names:
        raise ValueError(f'label list {path!r} names no class')
    return {i: i for i in range(len(names))}, dict(enumerate(names))


def _from_coco_json(path):
    """Index -> category id and id -> name, in the order of the file's ``categories``."""
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress notes
        coco = COCO(path)
    cats = coco.loadCats(coco.getCatIds())
    return ({i: cat['id'] for i, cat in enumerate(cats)},
            {cat['id']: cat['name'] for cat in cats})


def get_categories(metric_type, anno_file=None):
    """``(clsid2catid, catid2name)`` for a metric type and an annotation / label file.

    Args:
        metric_type (str): 'COCO' or 'VOC' (case-insensitive).
        anno_file (str | None): a COCO json or a label_list.txt (either for COCO, the latter for
            VOC). When None or missing, PaddleDetection's defaults are used with a warning: the
            80 COCO 2017 categories (ids 1..90) or the 20 Pascal VOC classes.

    Raises:
        ValueError: an unknown metric type, a COCO anno_file that is neither .json nor .txt, or
            a label list without class names.
    """
    kind = str(metric_type).lower()
    if kind not in ('coco', 'voc'):
        raise ValueError(f"unknown metric type {metric_type!r}: expected 'COCO' or 'VOC'")
    if anno_file and os.path.isfile(anno_file):
        if kind == 'coco' and anno_file.endswith('json'):
            return _from_coco_json(anno_file)
        if kind == 'voc' or anno_file.endswith('txt'):
            return _from_label_list(anno_file)
        raise ValueError(f'anno_file {anno_file!r} should be a .json or .txt file')
    logger.warning(f'anno_file {anno_file!r} is not set or does not exist (check the dataset\'s '
                   f'anno_path); using the default {kind.upper()} categories')
    if kind == 'coco':
        return ({i: catid for i, (catid, _) in enumerate(COCO17_CATEGORIES)},
                dict(COCO17_CATEGORIES))
    names = sorted(pascalvoc_label().items(), key=lambda kv: kv[1])
    return {i: i for i in range(len(names))}, {i: name for name, i in names}
