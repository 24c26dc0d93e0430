"""VOCDataSet: Pascal VOC XML annotations listed in a text file (PaddleDetection 2.6
``ppdet/data/source/voc.py``).

``anno_path`` lists one image per line, ``<image path> <xml path>``, both relative to
``dataset_dir/image_dir``. Class names map to indices by their line in ``label_list`` (relative to
``dataset_dir``), or to the 20 Pascal VOC classes in alphabetical order when ``label_list`` is None.

Records (numpy, original-image pixels):
    im_file str, im_id int64 [1] (the XML's ``<id>``, else the index among the parsed files),
    h / w float (``<size>``),
    gt_bbox float32 [n, 4] x1y1x2y2, gt_class int32 [n, 1], difficult int32 [n, 1].

Boxes are PaddleDetection's reading of ``<bndbox>``: the coordinates as written (no 1 is
subtracted), clipped to ``[0, w - 1] x [0, h - 1]``; a box left with ``x2 <= x1`` or ``y2 <= y1``
is dropped with a warning naming the XML file. An image is "empty" (kept only with
``allow_empty``) when it has no usable box; PaddleDetection 2.6 counts its ``<object>`` entries
instead and trains on an image whose boxes were all dropped as if it had none.
"""

import os
import xml.etree.ElementTree as ET

import numpy as np

from ppdet_lite.core.workspace import register, serializable
from ppdet_lite.utils.logger import get_logger
from .dataset import DetDataset, warn_skipped

__all__ = ['VOCDataSet', 'pascalvoc_label']

logger = get_logger(__name__)


def pascalvoc_label():
    """``{class name: index}`` of the 20 Pascal VOC classes (PaddleDetection's default)."""
    names = ['aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
             'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
             'sofa', 'train', 'tvmonitor']
    return {name: i for i, name in enumerate(names)}


def read_label_list(path):
    """``{class name: line index}`` of a label_list.txt (blank lines ignored).

    Raises:
        FileNotFoundError: the file does not exist. ValueError: it names no class.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'label_list {path!r} does not exist')
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f'label_list {path!r} is empty')
    return {name: i for i, name in enumerate(names)}


def _text(node, tag, xml_file):
    child = node.find(tag)
    if child is None or child.text is None:
        raise ValueError(f'VOCDataSet: {xml_file}: <{tag}> is missing')
    return child.text.strip()


@register
@serializable
class VOCDataSet(DetDataset):
    """Pascal VOC detection dataset with PaddleDetection's list-file convention.

    Args:
        dataset_dir (str): root directory of the dataset.
        image_dir (str): prefix of the paths in ``anno_path`` (relative to ``dataset_dir``).
        anno_path (str): list file, one ``<image> <xml>`` pair per line.
        data_fields (list[str]): keys to emit (``['image', 'gt_bbox', 'gt_class', 'difficult']``
            for training).
        sample_num (int): load the first ``sample_num`` images; -1 loads all.
        label_list (str | None): class names, one per line, relative to ``dataset_dir``; None
            uses the 20 Pascal VOC classes.
        allow_empty (bool): keep images without usable boxes.
        empty_ratio (float): as COCODataSet.
        repeat (int): the dataset is iterated ``repeat`` times per epoch.

    Attributes (after ``parse_dataset``): ``cname2cid`` (class name -> index).

    Raises (from ``parse_dataset``):
        FileNotFoundError: missing list file or label_list (named).
        ValueError: malformed list line or XML, an object whose class is not in the label list
            (naming the XML file and the class), or no image with a usable box (unless
            ``allow_empty``).
    """

    def __init__(self,
                 dataset_dir=None,
                 image_dir=None,
                 anno_path=None,
                 data_fields=['image'],
                 sample_num=-1,
                 label_list=None,
                 allow_empty=False,
                 empty_ratio=1.,
                 repeat=1):
        super().__init__(dataset_dir=dataset_dir, image_dir=image_dir, anno_path=anno_path,
                         data_fields=data_fields, sample_num=sample_num, repeat=repeat)
        self.label_list = label_list
        self.allow_empty = allow_empty
        self.empty_ratio = empty_ratio
        self.cname2cid = {}

    def get_label_list(self):
        """The label list path (``dataset_dir/label_list``), or None for the VOC classes."""
        return os.path.join(self.dataset_dir, self.label_list) if self.label_list else None

    def parse_dataset(self):
        """Read the list file and its XML files into ``self.roidbs`` (once)."""
        if self.roidbs is not None:
            return
        if self.anno_path is None:
            raise ValueError('VOCDataSet: anno_path is not set')
        anno_path = os.path.join(self.dataset_dir, self.anno_path)
        image_dir = os.path.join(self.dataset_dir, self.image_dir)
        if not os.path.isfile(anno_path):
            raise FileNotFoundError(f'VOCDataSet: list file {anno_path!r} does not exist')
        self.cname2cid = read_label_list(self.get_label_list()) if self.label_list \
            else pascalvoc_label()

        records, empty_records, missing, dropped = [], [], [], []
        ct = 0
        with open(anno_path) as f:
            lines = [(n, line.split()) for n, line in enumerate(f, 1) if line.strip()]
        if not lines:
            raise ValueError(f'VOCDataSet: list file {anno_path!r} is empty')
        for line_no, fields in lines:
            if len(fields) < 2:
                raise ValueError(f'VOCDataSet: {anno_path}:{line_no}: expected "<image path> '
                                 f'<xml path>", got {" ".join(fields)!r}')
            img_file, xml_file = (os.path.join(image_dir, x) for x in fields[:2])
            if not os.path.exists(img_file) or not os.path.isfile(xml_file):
                missing.append(img_file if not os.path.exists(img_file) else xml_file)
                continue
            rec, n_valid = self._read_xml(xml_file, img_file, ct, dropped)
            if rec is None:
                continue
            # counted even when dropped, as PaddleDetection: an image's default id is stable
            (records if n_valid else empty_records).append(rec)
            ct += 1
            if 0 < self.sample_num <= ct:
                break

        warn_skipped(anno_path, missing, dropped)
        if not records and not (self.allow_empty and empty_records):
            raise ValueError(
                f'VOCDataSet: no usable image in {anno_path} ({len(lines)} listed, '
                f'{len(missing)} with missing files, none with a usable box)'
                + ('' if self.allow_empty else '; set allow_empty: true to train on images '
                                               'without boxes'))
        logger.info(f'Load {ct} samples in file {anno_path}.')
        if self.allow_empty and empty_records:
            records += self._sample_empty(empty_records, len(records), self.empty_ratio)
        self.roidbs = records

    def _read_xml(self, xml_file, img_file, ct, dropped):
        """(record, number of usable boxes) of one XML file; (None, 0) for an invalid size."""
        try:
            tree = ET.parse(xml_file)
        except ET.ParseError as e:
            raise ValueError(f'VOCDataSet: cannot parse {xml_file}: {e}') from e
        id_node = tree.find('id')
        im_id = int(id_node.text) if id_node is not None else ct
        size = tree.find('size')
        if size is None:
            raise ValueError(f'VOCDataSet: {xml_file}: <size> is missing')
        im_w = float(_text(size, 'width', xml_file))
        im_h = float(_text(size, 'height', xml_file))
        if im_w <= 0 or im_h <= 0:
            logger.warning(f'{xml_file}: invalid size (width {im_w}, height {im_h}); the image '
                           f'is skipped')
            return None, 0

        boxes, classes, difficult = [], [], []
        for obj in tree.findall('object'):
            cname = _text(obj, 'name', xml_file)
            if cname not in self.cname2cid:
                source = self.get_label_list() or 'the 20 Pascal VOC classes'
                raise ValueError(f'VOCDataSet: {xml_file}: class {cname!r} is not in {source} '
                                 f'({sorted(self.cname2cid)})')
            node = obj.find('difficult')
            bndbox = obj.find('bndbox')
            if bndbox is None:
                raise ValueError(f'VOCDataSet: {xml_file}: an object has no <bndbox>')
            x1, y1, x2, y2 = (float(_text(bndbox, t, xml_file))
                              for t in ('xmin', 'ymin', 'xmax', 'ymax'))
            # PaddleDetection's clip: to the last pixel index, w - 1 / h - 1
            x1, y1 = max(0., x1), max(0., y1)
            x2, y2 = min(im_w - 1, x2), min(im_h - 1, y2)
            if x2 <= x1 or y2 <= y1:
                dropped.append(xml_file)
                logger.debug(f'{xml_file}: dropping box [{x1}, {y1}, {x2}, {y2}] of {cname!r}')
                continue
            boxes.append([x1, y1, x2, y2])
            classes.append(self.cname2cid[cname])
            difficult.append(int(node.text) if node is not None and node.text else 0)

        rec = {'im_file': img_file, 'im_id': np.array([im_id], dtype=np.int64),
               'h': im_h, 'w': im_w} if 'image' in self.data_fields else {}
        gt = {'gt_bbox': np.array(boxes, np.float32).reshape(-1, 4),
              'gt_class': np.array(classes, np.int32).reshape(-1, 1),
              'difficult': np.array(difficult, np.int32).reshape(-1, 1)}
        rec.update({k: v for k, v in gt.items() if k in self.data_fields})
        return rec, len(boxes)
