"""COCODataSet: COCO-format detection annotations (PaddleDetection 2.6
``ppdet/data/source/coco.py``).

Records (numpy, original-image pixels):
    im_file str, im_id int64 [1], h / w float (annotated size),
    gt_bbox float32 [n, 4] x1y1x2y2 pixels with 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h,
    gt_class int32 [n, 1] contiguous index 0..C-1 (order of the file's ``categories``),
    is_crowd int32 [n, 1].

Boxes are read as PaddleDetection does (COCO ``[x, y, w, h]`` -> ``[x, y, x + w, y + h]``,
rounded to 3 decimals; annotations with ``ignore``, without ``bbox``, with an all-zero bbox or
``area`` <= 0 are left out), and then, unlike PaddleDetection 2.6, clipped to the annotated image
size; what is left with a side <= 1e-5 pixel is dropped. Clipped and dropped boxes are reported in
one warning per dataset naming the images (each box at debug level).
"""

import contextlib
import io
import json
import math
import os

import numpy as np

from ppdet_lite.core.workspace import register, serializable
from ppdet_lite.utils.logger import get_logger
from .dataset import DetDataset, name_some, warn_skipped

__all__ = ['COCODataSet']

logger = get_logger(__name__)

# PaddleDetection's minimum box side (pixels) after conversion to x1y1x2y2.
_EPS = 1e-5


def _load_coco(anno_path):
    """pycocotools' COCO index of ``anno_path``, with errors that name the file."""
    if not anno_path.endswith('.json'):
        raise ValueError(f'COCODataSet: invalid coco annotation file {anno_path!r} '
                         f'(expected a .json file)')
    if not os.path.isfile(anno_path):
        raise FileNotFoundError(f'COCODataSet: annotation file {anno_path!r} does not exist')
    try:
        with open(anno_path) as f:
            content = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f'COCODataSet: annotation file {anno_path!r} is empty or not valid '
                         f'JSON: {e}') from e
    if not isinstance(content, dict) or not content.get('images'):
        raise ValueError(f"COCODataSet: annotation file {anno_path!r} lists no images (its "
                         f"'images' entry is missing or empty)")
    from pycocotools.coco import COCO
    coco = COCO()
    coco.dataset = content
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress notes
        coco.createIndex()
    return coco


@register
@serializable
class COCODataSet(DetDataset):
    """COCO-format detection dataset.

    Args:
        dataset_dir (str): root directory of the dataset.
        image_dir (str): image directory relative to ``dataset_dir``; ``file_name`` entries are
            relative to it.
        anno_path (str): COCO json relative to ``dataset_dir``.
        data_fields (list[str]): keys to emit (PaddleDetection's
            ``['image', 'gt_bbox', 'gt_class', 'is_crowd']`` for training).
        sample_num (int): load the first ``sample_num`` images (sorted by id); -1 loads all.
        load_crowd (bool): keep ``iscrowd`` annotations (``is_crowd`` = 1); PaddleDetection
            leaves them out by default.
        allow_empty (bool): keep images without usable boxes (``gt_bbox`` of shape [0, 4]).
        empty_ratio (float): with ``allow_empty``, keep ``int(n * r / (1 - r))`` of the empty
            images for ``n`` non-empty ones when r is in [0, 1); all of them otherwise.
        repeat (int): the dataset is iterated ``repeat`` times per epoch.

    Attributes (after ``parse_dataset``): ``catid2clsid``, ``clsid2catid`` (dicts between COCO
    category ids and contiguous class indices), ``cname2cid`` (category name -> class index).

    Raises (from ``parse_dataset``):
        FileNotFoundError: missing annotation file or image directory (named).
        ValueError: annotation file that is not .json, empty, invalid, lists no images, refers to an
            unknown category, or has no image with a usable box (unless ``allow_empty``).
    """

    def __init__(self,
                 dataset_dir=None,
                 image_dir=None,
                 anno_path=None,
                 data_fields=['image'],
                 sample_num=-1,
                 load_crowd=False,
                 allow_empty=False,
                 empty_ratio=1.,
                 repeat=1):
        super().__init__(dataset_dir, image_dir, anno_path, data_fields, sample_num,
                         repeat=repeat)
        self.load_crowd = load_crowd
        self.allow_empty = allow_empty
        self.empty_ratio = empty_ratio
        self.load_image_only = False
        self.catid2clsid = {}
        self.clsid2catid = {}
        self.cname2cid = {}

    def parse_dataset(self):
        """Read the annotation file into ``self.roidbs`` (once; later calls do nothing)."""
        if self.roidbs is not None:
            return
        if self.anno_path is None:
            raise ValueError('COCODataSet: anno_path is not set')
        anno_path = os.path.join(self.dataset_dir, self.anno_path)
        image_dir = os.path.join(self.dataset_dir, self.image_dir)
        if self.image_dir and not os.path.isdir(image_dir):
            raise FileNotFoundError(f'COCODataSet: image_dir {image_dir!r} does not exist '
                                    f'(dataset_dir {self.dataset_dir!r}, image_dir '
                                    f'{self.image_dir!r})')
        coco = _load_coco(anno_path)

        cat_ids = coco.getCatIds()
        self.catid2clsid = {catid: i for i, catid in enumerate(cat_ids)}
        self.clsid2catid = {i: catid for catid, i in self.catid2clsid.items()}
        self.cname2cid = {coco.loadCats(catid)[0]['name']: clsid
                          for catid, clsid in self.catid2clsid.items()}
        if 'annotations' not in coco.dataset:
            self.load_image_only = True
            logger.warning(f'annotation file {anno_path} has no annotations: loading image '
                           f'information only')

        records, empty_records = [], []
        missing, bad_size, clipped, dropped = [], [], [], []
        img_ids = sorted(coco.getImgIds())
        ct = examined = 0
        for img_id in img_ids:
            examined += 1
            img_anno = coco.loadImgs([img_id])[0]
            im_fname = img_anno['file_name']
            im_path = os.path.join(image_dir, im_fname) if image_dir else im_fname
            if not os.path.exists(im_path):
                missing.append(im_path)
                continue
            im_w, im_h = float(img_anno.get('width', -1)), float(img_anno.get('height', -1))
            if im_w <= 0 or im_h <= 0:
                bad_size.append(f'{im_path} (width {im_w}, height {im_h})')
                continue

            rec = {'im_file': im_path, 'im_id': np.array([img_id], dtype=np.int64),
                   'h': im_h, 'w': im_w} if 'image' in self.data_fields else {}
            is_empty = False
            if not self.load_image_only:
                gt = self._read_boxes(coco, img_id, im_path, im_w, im_h, anno_path, clipped,
                                      dropped)
                if len(gt['gt_bbox']) == 0:
                    if not self.allow_empty:
                        continue
                    is_empty = True
                rec.update({k: v for k, v in gt.items() if k in self.data_fields})

            (empty_records if is_empty else records).append(rec)
            ct += 1
            if 0 < self.sample_num <= ct:
                break

        self._report(anno_path, missing, bad_size, clipped, dropped)
        if ct == 0:
            raise ValueError(
                f'COCODataSet: no usable image in {anno_path}: {len(img_ids)} images, '
                f'{len(coco.dataset.get("annotations", []))} annotations, {len(missing)} image '
                f'files missing, none with a usable box'
                + ('' if self.allow_empty else '; set allow_empty: true to train on images '
                                               'without boxes'))
        invalid = examined - ct
        # PaddleDetection's line (which counts the images sample_num left unread as invalid too),
        # plus what "invalid" covers: newcomers read it as an error
        why = (' (images skipped: missing or invalid files, or no usable box'
               + (')' if self.allow_empty else ' and allow_empty off)')) if invalid else ''
        logger.info(f'Load [{ct} samples valid, {invalid} samples invalid] in file '
                    f'{anno_path}.{why}')
        if self.allow_empty and empty_records:
            records += self._sample_empty(empty_records, len(records), self.empty_ratio)
        self.roidbs = records

    def _read_boxes(self, coco, img_id, im_path, im_w, im_h, anno_path, clipped, dropped):
        """gt_bbox / gt_class / is_crowd of one image; appends to the clipped/dropped reports."""
        boxes, classes, crowd = [], [], []
        for inst in coco.loadAnns(coco.getAnnIds(imgIds=[img_id])):
            iscrowd = int(inst.get('iscrowd', 0))
            if iscrowd and not self.load_crowd:
                continue
            if inst.get('ignore', False) or 'bbox' not in inst or not any(inst['bbox']):
                continue
            catid = inst['category_id']
            if catid not in self.catid2clsid:
                raise ValueError(f'COCODataSet: {anno_path}: annotation {inst.get("id")} of '
                                 f'image {im_path} has category_id {catid!r}, which is not in '
                                 f'its categories {sorted(self.catid2clsid)}')
            x, y, bw, bh = [float(v) for v in inst['bbox']]
            if not all(math.isfinite(v) for v in (x, y, bw, bh)):
                raise ValueError(f'COCODataSet: {anno_path}: annotation {inst.get("id")} of '
                                 f'image {im_path} has a non-finite bbox {inst["bbox"]}')
            box = [round(v, 3) for v in (x, y, x + bw, y + bh)]
            area = float(inst.get('area', bw * bh))
            inside = [min(max(box[0], 0.), im_w), min(max(box[1], 0.), im_h),
                      min(max(box[2], 0.), im_w), min(max(box[3], 0.), im_h)]
            if area <= 0 or inside[2] - inside[0] <= _EPS or inside[3] - inside[1] <= _EPS:
                dropped.append(im_path)
                logger.debug(f'dropping box {box} (area {area}) of image {im_path} '
                             f'({im_w:g}x{im_h:g}): zero area or outside the image')
                continue
            if inside != box:
                clipped.append(im_path)
                logger.debug(f'clipping box {box} of image {im_path} to {inside}')
            boxes.append(inside)
            classes.append(self.catid2clsid[catid])
            crowd.append(iscrowd)
        return {'gt_bbox': np.array(boxes, dtype=np.float32).reshape(-1, 4),
                'gt_class': np.array(classes, dtype=np.int32).reshape(-1, 1),
                'is_crowd': np.array(crowd, dtype=np.int32).reshape(-1, 1)}

    @staticmethod
    def _report(anno_path, missing, bad_size, clipped, dropped):
        warn_skipped(anno_path, missing, dropped)
        if bad_size:
            logger.warning(f'{anno_path}: {len(bad_size)} images have an invalid size and are '
                           f'skipped: {name_some(bad_size)}')
        if clipped:
            images = sorted(set(clipped))
            logger.warning(f'{anno_path}: clipped {len(clipped)} boxes to the image, in '
                           f'{len(images)} images: {name_some(images)}')
