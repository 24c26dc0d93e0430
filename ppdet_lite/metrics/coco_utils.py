"""pycocotools' box evaluation with its printout routed through the project logger.

As PaddleDetection 2.6's ``ppdet/metrics/coco_utils.py`` ``cocoapi_eval``: ``COCOeval(gt, dt,
'bbox')`` with pycocotools' defaults (IoU 0.50:0.05:0.95, maxDets 1 / 10 / 100, area ranges
small / medium / large), its 12-line summary, and with ``classwise`` the AP of each category
(mean of the precision array over IoU thresholds and recall points, all areas, 100 detections).
"""

import contextlib
import copy
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ppdet_lite.utils.logger import get_logger
from .classwise_table import classwise_table

__all__ = ['load_coco', 'cocoapi_eval']

logger = get_logger(__name__)


@contextlib.contextmanager
def _captured_prints():
    """pycocotools reports with ``print``; collect it and pass it on through the logger: the
    summary lines at INFO, its progress chatter ("loading annotations", "DONE") at DEBUG."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    for line in buf.getvalue().splitlines():
        if line.startswith(' Average'):
            logger.info(line)
        elif line.strip():
            logger.debug(line)


def load_coco(anno_file):
    """``pycocotools.coco.COCO`` of a COCO json annotation file, quietly."""
    with _captured_prints():
        return COCO(anno_file)


def _empty_results(coco_gt):
    """A result set with the ground truth's images and categories and no detections:
    ``loadRes`` cannot build one (it reads the first result), ``COCOeval`` handles it."""
    coco_dt = COCO()
    coco_dt.dataset = {'images': copy.deepcopy(coco_gt.dataset.get('images', [])),
                       'categories': copy.deepcopy(coco_gt.dataset.get('categories', [])),
                       'annotations': []}
    coco_dt.createIndex()
    return coco_dt


def cocoapi_eval(results, coco_gt, classwise=False):
    """Evaluate COCO-format box results against ``coco_gt`` and log pycocotools' summary.

    Args:
        results (list[dict]): ``{'image_id', 'category_id', 'bbox' [x, y, w, h] pixels, 'score'}``
            (``json_results.get_det_res``); may be empty (every AP is then 0, or -1 where an area
            range has no ground truth, as pycocotools defines it).
        coco_gt (COCO): the annotations.
        classwise (bool): also log the per-category AP table.
    Returns:
        np.ndarray: [12] float64 ``COCOeval.stats`` (AP@[.5:.95], AP50, AP75, AP small / medium /
        large, AR@1, AR@10, AR@100, AR small / medium / large).
    Raises:
        ValueError: a result names an image id absent from the annotations.
    """
    unknown = sorted({r['image_id'] for r in results} - set(coco_gt.getImgIds()))
    if unknown:
        raise ValueError(f'detections for image ids {unknown[:10]} that the annotation file does '
                         f'not contain: is the EvalDataset the one of the anno_file?')
    logger.info('Start evaluate...')
    with _captured_prints():
        # loadRes adds keys to the dicts it is given: hand it copies, the caller's stay as they are
        coco_dt = (coco_gt.loadRes([dict(r) for r in results]) if results
                   else _empty_results(coco_gt))
        coco_eval = COCOeval(coco_gt, coco_dt, 'bbox')
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    if classwise:
        _log_classwise(coco_eval, coco_gt)
    return coco_eval.stats


def _log_classwise(coco_eval, coco_gt):
    # precision: [IoU thresholds, recall points, categories, area ranges, max dets]; categories
    # follow params.catIds (sorted ids), so names are looked up by those ids
    precision = coco_eval.eval['precision']
    names, aps = [], []
    for k, cat_id in enumerate(coco_eval.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        names.append(coco_gt.cats[int(cat_id)]['name'])
        aps.append(float(np.mean(p)) if p.size else float('nan'))
    logger.info('Per-category of bbox AP:')
    for line in classwise_table(names, aps):
        logger.info(line)
