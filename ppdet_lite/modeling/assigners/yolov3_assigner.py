"""YOLOv3Assigner: YOLOv3's matching with an ignore threshold (Redmon and Farhadi, "YOLOv3: An
Incremental Improvement", 2018; seed 001's survey), as PaddleDetection 2.6 defines it in
``Gt2YoloTarget`` (``ppdet/data/transform/batch_operators.py``, the positives) and ``YOLOv3Loss``
(``ppdet/modeling/losses/yolo_loss.py``, the ignored priors), batched over images and padded GT.

For every real GT box of width ``w > 0`` and height ``h > 0`` (and score > 0 when ``gts.scores``
are given; ``Gt2YoloTarget`` skips the others):

1. candidates: on each FPN level of stride ``s``, the one prior of the cell holding the GT centre,
   column ``floor(cx / s)`` and row ``floor(cy / s)`` (clamped to the grid);
2. best prior: the candidate whose prior shape (the ``w, h`` of its ``priors.boxes``) has the
   highest shape-only IoU with the GT's ``w, h``, both boxes placed on one centre
   (``min(w, w') * min(h, h') / (w h + w' h' - min(w, w') * min(h, h'))``); it is the GT's one
   positive. Equal IoUs go to the earlier level in ``priors``' order (``ordering``);
3. conflicts: a prior that is the best prior of several GTs goes to the one with the highest shape
   IoU, equal IoUs to the lowest GT slot (``conflicts`` rule ``'max'``); the others get no positive;
4. ignored: every other prior whose IoU with some real GT exceeds ``ignore_thresh`` is ignored
   (``gt_index`` ``IGNORED``: neither positive nor negative). The IoU is taken with the prior's
   predicted box when ``preds`` are given, as ``YOLOv3Loss`` does with its decoded predictions
   (seed 001: "the anchor's prediction, not the fixed anchor"), else with the prior box itself;
5. targets: label and box of the GT; classification score ``gts.scores`` (YOLOv3's objectness
   target is the GT score) or 1; with ``iou_score`` and ``preds`` given, the IoU of the positive's
   predicted box with its GT.

How PP-YOLOE's priors generalise YOLOv3's anchors: YOLOv3 has three anchor shapes per level (nine
in all) and picks the best of the nine; the cell's three anchors are three priors. PP-YOLOE has one
prior per cell, a square of ``grid_cell_scale`` strides, so each level offers one shape and step 2
chooses the level whose square fits the GT best. A level whose priors have different shapes is
handled too: the candidate's own box gives the shape.

Differences from PaddleDetection, stated:
- Two GTs with the same best prior: ``Gt2YoloTarget`` writes the GTs in slot order, so the last
  one's box wins (and the class targets of both are set); here step 3's rule decides.
- Ties in step 2: ``Gt2YoloTarget`` keeps the first of its anchors, listed smallest first; here
  the earlier level of ``priors`` wins (PP-YOLOE lists the coarsest level first).
- A GT centre outside the image is clamped to the border cell (``Gt2YoloTarget`` would index
  outside its grid).
- ``Gt2YoloTarget``'s ``iou_thresh`` (extra positives among a cell's other anchors, off by default)
  has no counterpart: a PP-YOLOE cell has one prior.

Speed: steps 1-3 touch ``B * n * K`` (GT, level) pairs. Step 4 is dense, one IoU per (image,
prior, GT slot) (``B * L * n``), as in ``YOLOv3Loss``: predicted boxes can be anywhere; it is the
cost of a call (``bbox_utils.batch_iou_planes``).

Host synchronisations per call: none.
"""

import paddle

from ppdet_lite.core.workspace import register
from ..bbox_utils import batch_iou_planes, bbox_center, bbox_iou
from ..checks import check_bool, check_int, check_number, check_tensor
from .base import BACKGROUND, IGNORED, BaseAssigner, background_result, build_result
from .conflicts import resolve_conflicts_pairs
from .gt_check import check_gt_inputs
from .ordering import arg_best

__all__ = ['YOLOv3Assigner']

# PaddleDetection's batch_iou_similarity epsilon (YOLOv3Loss's ignore IoU).
PRED_IOU_EPS = 1e-9


@register
class YOLOv3Assigner(BaseAssigner):
    """YOLOv3 matching: each GT's best-shaped prior at its centre cell, an ignore threshold.

    Args:
        num_classes (int): C; the background label is C.
        ignore_thresh (float): priors (other than positives) whose IoU with a real GT is above
            this are ignored; 1 ignores nothing.
        iou_score (bool): when ``preds`` are given, a positive's target score is the IoU of its
            predicted box with its GT instead of the GT score (or 1). ``PPYOLOELoss`` hands
            predictions to this assigner (for the ignore test too) under ``static_target:
            pred_iou`` only; otherwise the prior boxes decide the ignored priors.
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range (num_classes >= 1,
            0 <= ignore_thresh <= 1).
    """
    needs_preds = False

    def __init__(self, num_classes=80, ignore_thresh=0.7, iou_score=False):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_number(owner, 'ignore_thresh', ignore_thresh, low=0, high=1)
        check_bool(owner, 'iou_score', iou_score)
        self.ignore_thresh = float(ignore_thresh)
        self.iou_score = iou_score

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign``).

        Args:
            priors (Priors): ``boxes [L, 4]``, ``strides [L]``, ``num_anchors_list`` and
                ``level_shapes`` are used.
            gts (GTs): padded GT, ``bboxes [B, n, 4]`` x1y1x2y2 pixels.
            preds (Preds|None): ``preds.bboxes [B, L, 4]`` (pixels) decide the ignored priors
                when given.
        Returns:
            AssignResult: ``gt_index [B, L]`` is a GT slot, ``BACKGROUND`` or ``IGNORED``.
        Raises:
            TypeError, ValueError: inputs of the wrong shape or dtype; ``num_anchors_list`` not
                matching ``level_shapes`` or L.
        """
        owner = type(self).__name__
        sizes = {}
        check_gt_inputs(owner, gts.labels, gts.bboxes, gts.mask, sizes, gts.scores)
        check_tensor(owner, 'priors.boxes', priors.boxes, ['L', 4], sizes, dtypes=('float32',))
        check_tensor(owner, 'priors.strides', priors.strides, ['L'], sizes, dtypes=('float32',))
        if preds is not None:
            check_tensor(owner, 'preds.bboxes', preds.bboxes, ['B', 'L', 4], sizes,
                         dtypes=('float32',))
        levels = priors.level_spans(owner)
        batch_size, num_gts = gts.bboxes.shape[:2]
        num_priors = priors.boxes.shape[0]
        if batch_size == 0 or num_gts == 0 or num_priors == 0:
            return background_result(batch_size, num_priors, self.num_classes, gts.labels.dtype)

        candidate, shape_iou = self._centre_cell_candidates(priors, levels, gts)
        best_prior, best_iou = self._best_prior(candidate, shape_iou)
        gt_index = self._resolve(best_prior, best_iou, gts, num_priors)
        gt_index = self._ignore(gt_index, priors, gts, preds)
        return build_result(gt_index, gts, self.num_classes, self._scores(gt_index, gts, preds))

    # 1. candidates ------------------------------------------------------------------------------

    def _centre_cell_candidates(self, priors, levels, gts):
        """``(candidate [R, K], shape_iou [R, K])``: per GT row ``b * n + g`` and level with
        priors, the prior of the cell holding the GT centre (int64) and its shape IoU."""
        boxes = gts.bboxes.reshape([-1, 4])
        centre = bbox_center(boxes)
        gt_shape = _shape_box(boxes)
        candidates, ious = [], []
        for start, rows, cols in levels:
            if rows * cols == 0:
                continue
            cell = paddle.floor(centre / priors.strides[start:start + 1]).astype('int64')
            col = paddle.clip(cell[:, 0], 0, cols - 1)
            row = paddle.clip(cell[:, 1], 0, rows - 1)
            prior = start + row * cols + col
            prior_shape = _shape_box(paddle.gather(priors.boxes, prior))
            candidates.append(prior)
            ious.append(bbox_iou(gt_shape, prior_shape))
        return paddle.stack(candidates, axis=1), paddle.stack(ious, axis=1)

    # 2. best prior ------------------------------------------------------------------------------

    @staticmethod
    def _best_prior(candidate, shape_iou):
        """``(prior [R], iou [R])``: the candidate of highest shape IoU, earliest level on ties."""
        best = arg_best(shape_iou, axis=1).unsqueeze(1)
        return (paddle.take_along_axis(candidate, best, axis=1).squeeze(1),
                paddle.take_along_axis(shape_iou, best, axis=1).squeeze(1))

    # 3. conflicts -------------------------------------------------------------------------------

    @staticmethod
    def _resolve(best_prior, best_iou, gts, num_priors):
        """``[B, L]`` int64 gt_index of the positives: each contested prior to its highest shape
        IoU claimant, lowest slot on ties."""
        batch_size, num_gts = gts.bboxes.shape[:2]
        boxes = gts.bboxes.reshape([-1, 4])
        matched = paddle.logical_and(gts.mask.reshape([-1]) > 0,
                                     paddle.logical_and(boxes[:, 2] > boxes[:, 0],
                                                        boxes[:, 3] > boxes[:, 1]))
        if gts.scores is not None:
            matched = paddle.logical_and(matched, gts.scores.reshape([-1]) > 0)
        num_flat = batch_size * num_priors
        row = paddle.arange(batch_size * num_gts, dtype='int64')
        flat = (row // num_gts) * num_priors + best_prior
        # GTs that match nothing all point at one extra slot, dropped below
        flat = paddle.where(matched, flat, paddle.full_like(flat, num_flat))
        gt_index = resolve_conflicts_pairs(flat, row % num_gts, best_iou, num_gts, num_flat + 1,
                                           'max')
        return gt_index[:num_flat].reshape([batch_size, num_priors])

    # 4. ignored ---------------------------------------------------------------------------------

    def _ignore(self, gt_index, priors, gts, preds):
        """``gt_index`` with the non-positive priors above ``ignore_thresh`` set to ``IGNORED``."""
        boxes = priors.boxes.unsqueeze(0) if preds is None else preds.bboxes
        # a padded slot becomes the empty box (0, 0, 0, 0): IoU 0 with anything
        real_gts = paddle.where(gts.mask > 0, gts.bboxes, paddle.zeros_like(gts.bboxes))
        best = batch_iou_planes(real_gts, boxes, PRED_IOU_EPS).max(axis=1)
        ignored = paddle.logical_and(gt_index == BACKGROUND, best > self.ignore_thresh)
        return paddle.where(ignored, paddle.full_like(gt_index, IGNORED), gt_index)

    # 5. targets ---------------------------------------------------------------------------------

    def _scores(self, gt_index, gts, preds):
        """``[B, L]`` float32 IoU of each prior's predicted box with its GT, or None."""
        if not self.iou_score or preds is None:
            return None
        slot = paddle.clip(gt_index, min=0).unsqueeze(-1).tile([1, 1, 4])
        return bbox_iou(preds.bboxes, paddle.take_along_axis(gts.bboxes, slot, axis=1),
                        PRED_IOU_EPS)


def _shape_box(boxes):
    """``[R, 4]``: boxes of the same width and height placed at the origin (shape-only IoU)."""
    wh = boxes[:, 2:4] - boxes[:, 0:2]
    return paddle.concat([paddle.zeros_like(wh), wh], axis=1)
