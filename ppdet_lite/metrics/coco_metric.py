"""COCO box AP through pycocotools, with PaddleDetection 2.6's ``COCOMetric`` interface
(``ppdet/metrics/metrics.py``)."""

import json
import os

from ppdet_lite.utils.logger import get_logger
from .coco_utils import cocoapi_eval, load_coco
from .json_results import get_det_res, to_numpy
from .metric import Metric

__all__ = ['COCOMetric']

logger = get_logger(__name__)


class COCOMetric(Metric):
    """COCO box evaluation of a model's NMS output.

    Args:
        anno_file (str): COCO json of the evaluated images (the EvalDataset's ``anno_path``).
        clsid2catid (dict | None): contiguous class index -> COCO category id. None (or empty,
            as from a dataset not parsed yet): index ``i`` is the ``i``-th category of the
            file's ``categories`` list, which is how PaddleDetection's COCODataSet numbers
            classes (``COCO.getCatIds()`` order, not sorted).
        classwise (bool): also log the AP of every category.
        output_eval (str | None): directory that receives ``bbox.json`` (created if missing).
        bias (float): added to result widths and heights (``w = x2 - x1 + bias``).
        IouType (str): only ``'bbox'``.
        save_prediction_only (bool): write ``bbox.json`` (to ``output_eval``, else the working
            directory, as PaddleDetection does) and evaluate nothing.
    Raises:
        FileNotFoundError: ``anno_file`` is missing while it is needed.
        ValueError: unsupported ``IouType``.

    ``update(inputs, outputs)``: ``inputs['im_id']`` [B, 1] int; ``outputs['bbox']`` [N, 6] float
    rows ``(class index, score, x1, y1, x2, y2)`` in original-image pixels and
    ``outputs['bbox_num']`` [B] int (numpy arrays or paddle Tensors).
    ``accumulate()`` runs ``COCOeval`` and logs its summary (and the per-class table);
    ``get_results()`` -> ``{'bbox': [12 floats]}`` (``COCOeval.stats``; ``{}`` before
    ``accumulate`` or with ``save_prediction_only``).
    """

    def __init__(self, anno_file, clsid2catid=None, classwise=False, output_eval=None, bias=0,
                 IouType='bbox', save_prediction_only=False):
        if IouType != 'bbox':
            raise ValueError(f"COCOMetric: IouType {IouType!r} is not supported (only 'bbox')")
        self.anno_file = anno_file
        self.classwise = classwise
        self.output_eval = output_eval
        self.bias = bias
        self.iou_type = IouType
        self.save_prediction_only = save_prediction_only
        self.coco_gt = None
        if not save_prediction_only or not clsid2catid:
            if not anno_file or not os.path.isfile(anno_file):
                raise FileNotFoundError(f'COCOMetric: anno_file {anno_file!r} is not a file')
            self.coco_gt = load_coco(anno_file)
        if not clsid2catid:
            clsid2catid = {i: cat_id for i, cat_id in enumerate(self.coco_gt.getCatIds())}
        self.clsid2catid = clsid2catid
        if output_eval:
            os.makedirs(output_eval, exist_ok=True)
        self.reset()

    def reset(self):
        self.results = {'bbox': []}
        self.eval_results = {}

    def update(self, inputs, outputs):
        self.results['bbox'] += get_det_res(
            to_numpy(outputs.get('bbox'), "outputs['bbox']"),
            to_numpy(outputs.get('bbox_num'), "outputs['bbox_num']"),
            to_numpy(inputs.get('im_id'), "inputs['im_id']"), self.clsid2catid, bias=self.bias)

    def accumulate(self):
        results = self.results['bbox']
        if self.output_eval or self.save_prediction_only:
            path = os.path.join(self.output_eval or '', 'bbox.json')
            with open(path, 'w') as f:
                json.dump(results, f)
            logger.info(f'The bbox result is saved to {path}.')
        if self.save_prediction_only:
            return
        if not results:
            logger.warning('COCOMetric: no detections at all (AP 0 wherever there is ground '
                           'truth); the model may be untrained or the NMS score_threshold too high')
        self.eval_results['bbox'] = [float(s) for s in
                                     cocoapi_eval(results, self.coco_gt, self.classwise)]

    def get_results(self):
        return self.eval_results
