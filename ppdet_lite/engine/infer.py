"""Detections on image files with a trained model (what ``tools/infer.py`` runs).

The model is the one the exporter writes (``build_inference_model``: eval mode, the checkpoint's
``.pdparams`` weights, EMA ones when training used EMA, RepVGG fused) and the images go through the
TestReader's own transforms, so these detections are those of the exported model run by
``deploy/python/infer.py`` on the same image (up to float rounding; tested).
"""

import json
import os

import numpy as np
import paddle

from ppdet_lite.core.workspace import create
from ppdet_lite.data.datasets.category import get_categories
from ppdet_lite.data.datasets.image_folder import IMAGE_EXTENSIONS
from ppdet_lite.data.transforms import ImageDecodeError
from ppdet_lite.metrics.json_results import get_det_res
from ppdet_lite.utils.logger import get_logger
from .export import build_inference_model, refuse_export_switches

__all__ = ['Predictor', 'list_images', 'coco_results', 'image_ids_by_name']

logger = get_logger(__name__)


def list_images(infer_img=None, infer_dir=None):
    """``[infer_img]``, or the images under ``infer_dir`` (recursive, sorted; PaddleDetection's
    extensions).

    Raises:
        FileNotFoundError: the file or directory does not exist; ValueError: neither given, or
            no image in the directory.
    """
    if infer_img:
        if not os.path.isfile(infer_img):
            raise FileNotFoundError(f'--infer_img {infer_img} does not exist')
        return [infer_img]
    if not infer_dir:
        raise ValueError('give --infer_img or --infer_dir')
    if not os.path.isdir(infer_dir):
        raise FileNotFoundError(f'--infer_dir {infer_dir} is not a directory')
    images = []
    for root, _, names in sorted(os.walk(infer_dir)):
        images.extend(os.path.join(root, n) for n in sorted(names)
                      if n.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise ValueError(f'--infer_dir {infer_dir}: no {"/".join(IMAGE_EXTENSIONS)} image found')
    return images


class Predictor:
    """A trained detector with its TestReader preprocessing and class names.

    Args:
        cfg (AttrDict): the loaded config (``architecture``, ``TestReader``, ``TestDataset``,
            ``metric``).
        weights (str | None): checkpoint; default ``cfg.weights``.
    Raises:
        ValueError: ``exclude_nms`` / ``exclude_post_process`` set (export switches; see
            ``refuse_export_switches``), weights that do not fit the model.
    Attributes:
        labels (list[str]): class names by class index; clsid2catid (dict): class index ->
            category id of the TestDataset's annotation file (COCO results use it);
        file_ids (dict): image file name -> id in that file (``image_ids_by_name``).
    """

    def __init__(self, cfg, weights=None):
        refuse_export_switches(cfg, 'tools/infer.py')
        self.model = build_inference_model(cfg, weights)
        reader = create('TestReader', cfg=cfg)
        self._sample_transforms = reader._sample_transforms
        self._batch_transforms = reader._batch_transforms
        self.batch_size = reader.batch_size
        dataset = create('TestDataset', cfg=cfg)
        anno = dataset.get_anno() if hasattr(dataset, 'get_anno') else None
        self.clsid2catid, catid2name = get_categories(cfg.get('metric', 'COCO'), anno)
        self.labels = [str(catid2name[self.clsid2catid[i]]) for i in range(len(self.clsid2catid))]
        self.file_ids = image_ids_by_name(anno) if cfg.get('metric', 'COCO') == 'COCO' else {}

    def preprocess(self, im_file):
        """The TestReader sample of one image file.

        Raises:
            ImageDecodeError: the file is missing or not an image (the message names it).
        """
        return self._sample_transforms({'im_file': im_file})

    def predict_samples(self, samples):
        """Detections for preprocessed samples: per sample ``[n, 6]`` float32 (class, score,
        x1, y1, x2, y2) in original-image pixels, every row the model's NMS keeps."""
        batch = self._batch_transforms(samples)
        inputs = {key: paddle.to_tensor(batch[key])
                  for key in ('image', 'im_shape', 'scale_factor')}
        with paddle.no_grad():
            out = self.model(inputs)
        bbox, bbox_num = out['bbox'].numpy().reshape(-1, 6), out['bbox_num'].numpy()
        ends = np.cumsum(bbox_num)
        return [bbox[end - n:end] for n, end in zip(bbox_num, ends)]

    def predict(self, im_files, skip_unreadable=False):
        """Detections for image files, in batches of ``TestReader.batch_size``.

        Args:
            im_files (list[str]): image paths.
            skip_unreadable (bool): warn about and leave out an unreadable image (directory
                runs) instead of raising.
        Returns:
            list of ``(im_file, ndarray [n, 6])`` for the images read, in order.
        Raises:
            ImageDecodeError: an unreadable image (naming it) unless ``skip_unreadable``.
        """
        results, files, samples = [], [], []
        for im_file in im_files:
            try:
                samples.append(self.preprocess(im_file))
                files.append(im_file)
            except ImageDecodeError as e:
                if not skip_unreadable:
                    raise
                logger.warning(f'skipping {im_file}: {e}')
            if len(samples) == self.batch_size:
                results.extend(zip(files, self.predict_samples(samples)))
                files, samples = [], []
        if samples:
            results.extend(zip(files, self.predict_samples(samples)))
        return results


def image_ids_by_name(anno_path):
    """``{file name: image id}`` of a COCO annotation file's ``images`` (file names reduced to
    their base name; a base name listed twice is left out as ambiguous); ``{}`` when there is
    no such file or it is not COCO JSON."""
    if not anno_path or not os.path.isfile(anno_path):
        return {}
    try:
        with open(anno_path) as f:
            images = json.load(f).get('images') or []
    except (OSError, ValueError, AttributeError):
        return {}
    ids, seen = {}, set()
    for image in images:
        name = os.path.basename(str(image.get('file_name', '')))
        if name in seen:
            ids.pop(name, None)
        elif 'id' in image:
            ids[name] = image['id']
        seen.add(name)
    return ids


def coco_results(predictions, clsid2catid, file_ids=None):
    """COCO result dicts (``image_id``, ``category_id`` through ``clsid2catid``, ``bbox`` [x, y,
    w, h], ``score``) plus each image's ``file_name`` (base name).

    ``image_id`` is the id of the image's file name in ``file_ids`` (the TestDataset's COCO
    annotation file, see ``image_ids_by_name``), so pycocotools' ``loadRes`` against that file
    works; an image not listed there gets its position in ``predictions``.
    """
    file_ids = file_ids or {}
    results = []
    for position, (im_file, dets) in enumerate(predictions):
        name = os.path.basename(im_file)
        image_id = file_ids.get(name, position)
        for row in get_det_res(dets, [len(dets)], [image_id], clsid2catid):
            row['file_name'] = name
            results.append(row)
    return results
