"""Dynamic-k matching of (GT, prior) pairs (OTA / YOLOX / NanoDet-Plus), in two scopes.

Given each candidate pair's cost and IoU (IoU of the prior's predicted box with the GT):

1. dynamic k: ``k_g = max(1, floor(sum of GT g's ``topk`` largest candidate IoUs))`` (fewer
   terms when g has fewer candidates). The sum is taken in float64; the references sum the float32
   IoUs in float32, which can only differ when the sum lies within float32 rounding of an integer.
2. GT g claims its ``k_g`` lowest-cost candidates (equal costs: lowest prior index first, the
   rule of ``ordering``); never more than it has candidates.
3. conflicts: a prior claimed by several GTs keeps the claimant of lowest cost
   (``conflicts.resolve_conflicts_pairs``, rule ``'min'``; equal costs: lowest GT slot), or,
   in the image scope, the lowest-cost GT of the image, claimant or not.

``dynamic_k_matching`` takes a list of candidate pairs (each GT's own region, listed from the
prior grid). ``image_scope_matching`` is the references' scope, where every GT of an image
ranks every candidate of the image: dense over the [B, n, L] pairs, by blocks of about
``_BLOCK_ELEMENTS`` (``image_blocks``), with ``image_candidates`` for the image's candidates,
``image_pair_inputs`` for each pair's class probability and IoU, and ``matched_iou`` for the
positives' IoUs. ``DynamicKAssigner`` is the ``assign`` both dynamic-k assigners share around
these two scopes.

The per-GT top-k of ``dynamic_k_matching`` runs on int64 keys ``(float order of the value) * P +
pair index``: distinct, so no kernel tie order is involved, and within a GT the pair index grows
with the prior index. Each GT's pairs are cut into rows of ``width``; one ``topk`` keeps each
row's best ``k``; the survivors of a GT are cut again until one row per GT remains (two rounds at
640 x 640). No host synchronisation.

``per_prior_sum`` and ``clamped_log`` serve the costs: a classification cost summed over the
classes is the sum of every class's zero-target term (the same for all GTs: computed once per
prior, not per pair) with the GT class's term swapped for its own.
"""

import paddle

from ..bbox_utils import bbox_iou, plane_iou
from ..checks import check_tensor
from .base import BACKGROUND, BaseAssigner, background_result, build_result
from .conflicts import resolve_conflicts_pairs
from .gt_check import check_gt_inputs
from .ordering import monotone_bits

__all__ = ['dynamic_k_matching', 'lowest_keys_per_gt', 'per_prior_sum', 'clamped_log',
           'image_blocks', 'image_scope_matching', 'image_candidates', 'image_pair_inputs',
           'matched_iou', 'DynamicKAssigner', 'CANDIDATE_SCOPES', 'PRED_IOU_EPS']

# Key of a left-out pair: above every real key, and a power of two, which Paddle's full_like
# keeps exact (it passes the fill value through a float).
_NONE = 2 ** 62
_OFFSET = 2 ** 31
# Pairs per row of a top-k round (at least 4 k): the fastest on this CPU at 640 x 640.
_WIDTH = 256
# Priors per chunk of per_prior_sum: chunks of about 1e6 elements keep Paddle's CPU allocator out
# of its slow path for large tensors (5x faster here).
_CHUNK_ROWS = 16000
LOG_CLAMP = 100.0
# Pairs per block of the image-scope matching: Paddle's CPU elementwise kernels are ~10x faster on
# outputs of up to 1-2 MB (int64 keys of 2**17 pairs) than on larger ones.
_BLOCK_ELEMENTS = 2 ** 17
CANDIDATE_SCOPES = ('image', 'gt')
# Added to the union of a predicted and a GT box (PaddleDetection's batch_iou_similarity).
PRED_IOU_EPS = 1e-9


def per_prior_sum(scores, fn):
    """``sum over classes of fn(scores)`` per prior, by chunks of rows.

    Args:
        scores (Tensor): ``[N, C]`` float32 probabilities.
        fn (callable): elementwise float32 -> float32.
    Returns:
        Tensor: ``[N]`` float32.
    """
    num = scores.shape[0]
    return paddle.concat([fn(scores[i:i + _CHUNK_ROWS]).sum(-1)
                          for i in range(0, max(num, 1), _CHUNK_ROWS)])


def clamped_log(x):
    """``log(x)`` clamped at -100, as binary cross-entropy clamps it (Paddle and PyTorch)."""
    return paddle.clip(paddle.log(x), min=-LOG_CLAMP)


def p2_log_q(p):
    """``p**2 * clamped log(1 - p)`` = ``-BCE(p, 0) * |0 - p|**2``: a zero-target class's term of
    the quality-weighted costs (SimOTA's varifocal form, DSL's soft-label form)."""
    return clamped_log(1 - p) * (p * p)


def lowest_keys_per_gt(keys, pair_gt, gt_start, gt_len, max_len, k):
    """The ``k`` smallest keys of every GT's pairs, ascending.

    Args:
        keys (Tensor): ``[T, P]`` int64 below ``2**62``, T independent key sets over the same
            pairs; ``2**62`` marks a pair left out.
        pair_gt (Tensor): ``[P]`` int64 GT row of each pair; pairs grouped by GT, ascending.
        gt_start, gt_len (Tensor): ``[G]`` int64 first pair and number of pairs of each GT.
        max_len (int): ``max(gt_len)`` (host value).
        k (int): keys kept per GT.
    Returns:
        Tensor: ``[T, G, k]`` int64, ``2**62`` where a GT has fewer than k keys.
    """
    num_types = keys.shape[0]
    num_gts = gt_len.shape[0]
    width = max(_WIDTH, 4 * k)
    seg = pair_gt
    pos = paddle.arange(keys.shape[1], dtype='int64') - paddle.gather(gt_start, pair_gt)
    seg_len = gt_len
    while max_len > width:
        rows_per_gt = (seg_len + width - 1) // width
        row_start = paddle.cumsum(rows_per_gt) - rows_per_gt
        num_rows = keys.shape[1] // width + num_gts  # an upper bound of sum(rows_per_gt)
        slot = (paddle.gather(row_start, seg) + pos // width) * width + pos % width
        kept = _keep_lowest(keys, slot, num_rows, width, k)  # [T, num_rows, k]
        # Output row r belongs to the GT whose rows span r; unused rows hold only _NONE.
        row = paddle.arange(num_rows, dtype='int64')
        row_gt = paddle.clip(paddle.searchsorted(row_start + rows_per_gt, row, right=True),
                             max=num_gts - 1)
        row_pos = (row - paddle.gather(row_start, row_gt)) * k
        seg = row_gt.unsqueeze(1).tile([1, k]).reshape([-1])
        pos = (row_pos.unsqueeze(1) + paddle.arange(k, dtype='int64')).reshape([-1])
        keys = kept.reshape([num_types, -1])
        seg_len = rows_per_gt * k
        max_len = -(-max_len // width) * k
    width = max(max_len, k)
    return _keep_lowest(keys, seg * width + pos, num_gts, width, k)


def _keep_lowest(keys, slot, num_rows, width, k):
    """Scatter ``keys [T, E]`` to ``slot`` of ``[T, num_rows, width]`` and keep each row's k lowest.
    Keys equal to ``_NONE`` go to a spare slot past the end, so they cannot overwrite a key."""
    num_types = keys.shape[0]
    size = num_rows * width
    spare = paddle.full_like(slot, size)
    offset = paddle.arange(num_types, dtype='int64').unsqueeze(1) * (size + 1)
    index = paddle.where(keys < _NONE, slot.unsqueeze(0), spare.unsqueeze(0)) + offset
    table = paddle.full([num_types * (size + 1)], _NONE, dtype='int64')
    table = paddle.scatter(table, index.reshape([-1]), keys.reshape([-1]))
    table = table.reshape([num_types, size + 1])[:, :size].reshape([num_types, num_rows, width])
    return paddle.topk(table, k, axis=-1, largest=False)[0]


def dynamic_k_matching(cost, iou, pair_gt, pair_prior, gt_start, gt_len, max_len, num_gts,
                       num_flat, topk, valid=None, penalised=None):
    """Steps 1-3 of the module docstring.

    Args:
        cost (Tensor): ``[P]`` float32 cost of each candidate pair (finite).
        iou (Tensor): ``[P]`` float32 IoU of each pair, in [0, 1].
        pair_gt (Tensor): ``[P]`` int64 GT row ``b * n + g``; pairs grouped by GT row, and within
            a GT in ascending prior index; a (GT, prior) pair appears once.
        pair_prior (Tensor): ``[P]`` int64 flat prior ``b * L + l`` (b = the GT row's image).
        gt_start, gt_len (Tensor): ``[B * n]`` int64 first pair and pairs of each GT row.
        max_len (int): ``max(gt_len)`` on the host.
        num_gts (int): n, the GT slots per image.
        num_flat (int): B * L.
        topk (int): IoUs summed for k (YOLOX's candidate_topk 10, NanoDet-Plus's topk 13).
        valid (Tensor|None): ``[P]`` bool, False for listed pairs that are not candidates (they
            are ignored); None: all are.
        penalised (Tensor|None): ``[P]`` bool, pairs whose cost carries SimOTA's outside penalty:
            they rank after every unpenalised pair, by their own cost among themselves (in the
            GT's ranking and among a prior's claimants). This is ``cost + M * penalised`` for any
            M larger than the cost range, computed exactly (in float32 ``cost + 1e5`` would be
            rounded to 1/128).
    Returns:
        (Tensor, Tensor): ``[B * L]`` int64 gt_index (slot or BACKGROUND) and ``[B * L]``
        float32 IoU of each positive with its GT (0 elsewhere).
    Raises:
        ValueError: ``2**29`` candidate pairs or more (the keys would reach ``2**62``).
    """
    num_pairs = cost.shape[0]
    if num_pairs >= 2 ** 29:
        raise ValueError(f'dynamic_k_matching: {num_pairs} candidate pairs, fewer than 2**29 '
                         f'supported')
    index = paddle.arange(num_pairs, dtype='int64')
    cost_order = monotone_bits(cost) + _OFFSET
    if penalised is not None:
        cost_order = cost_order + penalised.astype('int64') * 2 ** 32
    keys = paddle.stack([cost_order * num_pairs + index,
                         (_OFFSET - 1 - monotone_bits(iou)) * num_pairs + index])
    if valid is not None:
        keys = paddle.where(valid.unsqueeze(0), keys, paddle.full_like(keys, _NONE))
    best = lowest_keys_per_gt(keys, pair_gt, gt_start, gt_len, max_len, topk)
    present = best < _NONE
    pair = paddle.where(present, best % max(num_pairs, 1), paddle.zeros_like(best))
    top_iou = paddle.where(present[1], paddle.gather(iou, pair[1].reshape([-1])).reshape(
        pair[1].shape), paddle.zeros(pair[1].shape, dtype='float32'))
    dynamic_k = paddle.clip(paddle.floor(top_iou.astype('float64').sum(-1)), min=1)
    rank = paddle.arange(topk, dtype='float64').unsqueeze(0)
    claims = paddle.logical_and(present[0], rank < dynamic_k.unsqueeze(1)).reshape([-1])
    claim_pair = pair[0].reshape([-1])
    # Rows that claim nothing point at a spare prior past the end, dropped afterwards.
    spare = paddle.full_like(claim_pair, num_flat)
    claim_prior = paddle.where(claims, paddle.gather(pair_prior, claim_pair), spare)
    slot = paddle.gather(pair_gt, claim_pair) % num_gts
    if penalised is not None:
        # Lexicographic conflicts: a penalised claim competes only at priors without an
        # unpenalised one. (int32 gather: Paddle 2.6 has no bool gather.)
        flag = paddle.gather(penalised.astype('int32'), claim_pair) > 0
        clean = paddle.logical_and(claim_prior < num_flat, paddle.logical_not(flag))
        has_clean = paddle.put_along_axis(paddle.zeros([num_flat + 1], dtype='int64'),
                                          claim_prior, clean.astype('int64'), axis=0,
                                          reduce='amax')
        competes = paddle.logical_not(paddle.logical_and(
            flag, paddle.gather(has_clean, claim_prior) > 0))
        claim_prior = paddle.where(competes, claim_prior, spare)
    gt_index = resolve_conflicts_pairs(claim_prior, slot, paddle.gather(cost, claim_pair),
                                       num_gts, num_flat + 1, 'min')
    won = paddle.logical_and(claim_prior < num_flat,
                             paddle.gather(gt_index, claim_prior) == slot)
    pos_iou = paddle.scatter(paddle.zeros([num_flat + 1], dtype='float32'),
                             paddle.where(won, claim_prior, spare),
                             paddle.where(won, paddle.gather(iou, claim_pair),
                                          paddle.zeros([claim_pair.shape[0]], dtype='float32')))
    return gt_index[:num_flat], pos_iou[:num_flat]


def image_blocks(num_images, num_gts, num_priors):
    """Blocks ``(b0, b1, g0, g1)`` (images ``b0:b1``, GT slots ``g0:g1``) of about
    ``_BLOCK_ELEMENTS`` pairs that cover every (image, slot) once, in order: whole images while
    ``n * L`` fits, else slot ranges of one image."""
    rows = max(1, _BLOCK_ELEMENTS // max(num_priors, 1))
    if num_gts <= rows:
        step = max(1, rows // max(num_gts, 1))
        return [(b, min(b + step, num_images), 0, num_gts)
                for b in range(0, num_images, step)]
    parts = -(-num_gts // rows)
    size = -(-num_gts // parts)
    return [(b, b + 1, g, min(g + size, num_gts))
            for b in range(num_images) for g in range(0, num_gts, size)]


def image_scope_matching(tables, candidate, real, topk):
    """Steps 1-3 of the module docstring with the references' candidate scope: every real GT of
    an image ranks every candidate prior of that image, and a prior claimed by several GTs goes
    to the lowest cost among *all* real GTs of its image, claimant or not (YOLOX's and
    PaddleDetection's ``dynamic_k_matching``, NanoDet-Plus's ``dynamic_k_matching``).

    Dense over ``[B, n, L]``, by the blocks of ``image_blocks`` (no ``[B, n, L]`` tensor is
    held whole). One int64 key per pair, ``order * n * L + l * n + g`` with ``order`` the cost's
    float order (penalised pairs after every unpenalised one), serves both rankings: along a
    GT's priors it orders by cost, then lowest prior index; along a prior's GTs by cost, then
    lowest slot. Top-k runs on int64 keys, also for the IoUs (the bits of a float >= 0 order
    like its value), as Paddle's CPU top-k is 4-5x faster on them than on float32. No host
    synchronisation.

    Args:
        tables (callable): ``tables(b0, b1, g0, g1) -> (cost, iou, penalised)`` of the block's
            pairs, ``[b1 - b0, g1 - g0, L]`` float32 (finite), float32 in [0, 1], and bool (the
            pairs carrying SimOTA's outside penalty) or None.
        candidate (Tensor): ``[B, L]`` bool, the candidate priors of each image.
        real (Tensor): ``[B, n]`` bool, the real GT slots.
        topk (int): IoUs summed for k.
    Returns:
        Tensor: ``[B * L]`` int64 gt_index (slot or BACKGROUND).
    Raises:
        ValueError: ``n * L`` of ``2**29`` or more (the keys would reach ``2**62``).
    """
    num_images, num_priors = candidate.shape
    num_gts = real.shape[1]
    span = num_gts * num_priors
    if span >= 2 ** 29:
        raise ValueError(f'image_scope_matching: {num_gts} GT slots x {num_priors} priors, '
                         f'fewer than 2**29 supported')
    k = min(topk, num_priors)
    num_flat = num_images * num_priors
    rank = paddle.arange(k, dtype='float64')
    prior_part = (paddle.arange(num_priors, dtype='int64') * num_gts).reshape([1, 1, -1])
    candidate = candidate.astype('int32').unsqueeze(1)
    real = real.astype('int32').unsqueeze(2)
    claims, slots, minima = [], [], []
    for b0, b1, g0, g1 in image_blocks(num_images, num_gts, num_priors):
        cost, iou, penalised = tables(b0, b1, g0, g1)
        shape = cost.shape
        valid = paddle.logical_and(candidate[b0:b1].expand(shape) > 0,
                                   real[b0:b1, g0:g1].expand(shape) > 0)
        iou_bits = paddle.view(paddle.where(valid, iou, paddle.zeros_like(iou)), 'int32')
        top_bits = paddle.topk(iou_bits.astype('int64'), k)[0].astype('int32')
        dynamic_k = paddle.clip(paddle.floor(
            paddle.view(top_bits, 'float32').astype('float64').sum(-1)), min=1)
        order = monotone_bits(cost) + _OFFSET
        if penalised is not None:
            order = order + penalised.astype('int64') * 2 ** 32
        slot = paddle.arange(g0, g1, dtype='int64').reshape([1, -1, 1])
        key = paddle.where(valid, order * span + (prior_part.expand(shape) + slot.expand(shape)),
                           paddle.full_like(order, _NONE))
        best = paddle.topk(key, k, largest=False)[0]
        take = paddle.logical_and(best < _NONE, rank.expand(best.shape)
                                  < dynamic_k.unsqueeze(-1).expand(best.shape))
        image = paddle.arange(b0, b1, dtype='int64').reshape([-1, 1, 1]).expand(best.shape)
        flat = image * num_priors + (best % span) // num_gts
        claims.append(paddle.where(take, flat, paddle.full_like(flat, num_flat)).reshape([-1]))
        slots.append(slot.expand(best.shape).reshape([-1]))
        lowest = key.min(1)
        if g0 > 0:
            minima[-1] = paddle.minimum(minima[-1], lowest)
        else:
            minima.append(lowest)
    claim_prior = paddle.concat(claims)
    claim_slot = paddle.concat(slots)
    count = paddle.put_along_axis(paddle.zeros([num_flat + 1], dtype='int64'), claim_prior,
                                  paddle.ones_like(claim_prior), axis=0, reduce='add')[:num_flat]
    only = paddle.put_along_axis(paddle.full([num_flat + 1], BACKGROUND, dtype='int64'),
                                 claim_prior, claim_slot, axis=0, reduce='amax')[:num_flat]
    cheapest = paddle.concat(minima).reshape([-1]) % num_gts
    return paddle.where(count > 1, cheapest, only)


def image_candidates(near, real, num_priors):
    """``[B, L]`` bool: the priors ``near`` some real GT of their image (the references'
    foreground mask), by the blocks of ``image_blocks``.

    Args:
        near (callable): ``near(b0, b1, g0, g1) -> [b1 - b0, g1 - g0, L]`` bool, the priors each
            GT of the block makes candidates.
        real (Tensor): ``[B, n]`` bool, the real GT slots.
        num_priors (int): L.
    """
    union = []
    for b0, b1, g0, g1 in image_blocks(real.shape[0], real.shape[1], num_priors):
        found = near(b0, b1, g0, g1)
        found = paddle.any(paddle.logical_and(
            found, real[b0:b1, g0:g1].unsqueeze(2).expand(found.shape)), axis=1)
        if g0 > 0:
            union[-1] = paddle.logical_or(union[-1], found)
        else:
            union.append(found)
    return paddle.concat(union)


def image_pair_inputs(gts, preds, num_classes, eps):
    """The per-pair inputs of the image-scope costs, block by block (``image_blocks``).

    Args:
        gts (GTs): the GT batch, ``bboxes [B, n, 4]`` pixels, ``labels [B, n, 1]``.
        preds (Preds): ``scores [B, L, C]`` probabilities, ``bboxes [B, L, 4]`` pixels.
        num_classes (int): C.
        eps (float): added to the IoU's union.
    Returns:
        callable: ``(b0, b1, g0, g1) -> (p, iou)``, ``[b1 - b0, g1 - g0, L]`` float32 each: the
        predicted probability of the GT's class, and the IoU of the predicted box with the GT
        box (``bbox_utils.plane_iou`` on expanded planes: ``bbox_iou``'s values).
    """
    batch_size, num_gts = gts.bboxes.shape[:2]
    num_priors = preds.bboxes.shape[1]
    gt_planes = [gts.bboxes[:, :, i:i + 1] for i in range(4)]
    pred_planes = [preds.bboxes[:, :, i].unsqueeze(1) for i in range(4)]
    by_class = preds.scores.transpose([0, 2, 1]).reshape([-1, num_priors])
    # Clipped: the image scope checks no class id on the host, and must not read outside scores.
    labels = paddle.clip(gts.labels.reshape([batch_size, num_gts]).astype('int64'), 0,
                         num_classes - 1)

    def pair_inputs(b0, b1, g0, g1):
        shape = [b1 - b0, g1 - g0, num_priors]
        iou = plane_iou([t[b0:b1, g0:g1].expand(shape) for t in gt_planes],
                        [t[b0:b1].expand(shape) for t in pred_planes], eps)
        image = paddle.arange(b0, b1, dtype='int64').unsqueeze(1)
        row = image * num_classes + labels[b0:b1, g0:g1]
        return paddle.gather(by_class, row.reshape([-1])).reshape(shape), iou

    return pair_inputs


def matched_iou(gt_index, gt_boxes, pred_boxes, eps):
    """``[B, L]`` float32 IoU of each positive's predicted box with its GT (0 elsewhere): the
    values the matching's IoU tables hold for those pairs (``bbox_iou``, the same operations).

    Args:
        gt_index (Tensor): ``[B * L]`` int64 slot or negative.
        gt_boxes (Tensor): ``[B, n, 4]``; pred_boxes (Tensor): ``[B, L, 4]``, pixels.
        eps (float): added to the union.
    """
    num_images, num_gts = gt_boxes.shape[:2]
    num_priors = pred_boxes.shape[1]
    image = paddle.arange(num_images * num_priors, dtype='int64') // num_priors
    row = image * num_gts + paddle.clip(gt_index, min=0)
    iou = bbox_iou(pred_boxes.reshape([-1, 4]), paddle.gather(gt_boxes.reshape([-1, 4]), row),
                   eps)
    return paddle.where(gt_index >= 0, iou, paddle.zeros_like(iou)).reshape(
        [num_images, num_priors])


class DynamicKAssigner(BaseAssigner):
    """The ``assign`` of the dynamic-k assigners (SimOTA, Dynamic Soft Label): input checks,
    the empty batch, and the two candidate scopes around a subclass's candidates and cost.

    Subclasses set ``candidate_scope`` (one of ``CANDIDATE_SCOPES``) and implement:

    - ``dynamic_topk`` (int): IoUs summed for the dynamic k;
    - ``_image_regions(priors, gts) -> (near, penalised)``: ``near(b0, b1, g0, g1)`` as
      ``image_candidates`` takes it, and ``penalised(b0, g0)``, the ``[b1 - b0, g1 - g0, L]``
      bool penalised pairs of the block ``near`` last saw there, or None;
    - ``_own_candidates(owner, priors, gts, boxes, is_real) -> (gt_row, prior, gt_len, max_len,
      valid, penalised)`` or None without any pair, as ``dynamic_k_matching`` takes them;
    - ``_background(scores [N, C]) -> [N]`` and ``_cost(p, iou, background)``: the cost of a
      pair from its GT class's probability, its IoU and its prior's background term.
    """
    needs_preds = True

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign`` and the class docstring).

        Args:
            priors (Priors): ``points``, ``strides`` and ``level_shapes`` are used (a row-major
                grid per level, as ``grid_priors`` builds).
            gts (GTs): padded GT.
            preds (Preds): ``scores [B, L, C]`` probabilities, ``bboxes [B, L, 4]`` pixels.
        Returns:
            AssignResult.
        Raises:
            TypeError, ValueError: ``preds`` missing, inputs of the wrong shape or dtype, a real
                GT with a class outside ``[0, C)`` or a non-finite box.
        """
        owner = type(self).__name__
        sizes = {'L': (priors.points.shape[0], 'priors.points')}
        check_gt_inputs(owner, gts.labels, gts.bboxes, gts.mask, sizes)
        if preds is None:
            raise ValueError(f'{owner}.assign needs preds (predicted scores and boxes)')
        check_tensor(owner, 'preds.scores', preds.scores, ['B', 'L', self.num_classes], sizes,
                     dtypes=('float32',))
        check_tensor(owner, 'preds.bboxes', preds.bboxes, ['B', 'L', 4], sizes,
                     dtypes=('float32',))
        batch_size, num_gts = gts.bboxes.shape[:2]
        num_priors = priors.points.shape[0]
        if num_gts == 0 or num_priors == 0 or batch_size == 0:
            return background_result(batch_size, num_priors, self.num_classes, gts.labels.dtype)
        if self.candidate_scope == 'image':
            return self._assign_image(priors, gts, preds)
        return self._assign_own(owner, priors, gts, preds)

    def _assign_own(self, owner, priors, gts, preds):
        """``'gt'`` scope: each GT's own candidate pairs, listed from the grid."""
        batch_size, num_gts = gts.bboxes.shape[:2]
        num_priors = priors.points.shape[0]
        boxes = gts.bboxes.reshape([-1, 4])
        is_real = gts.mask.reshape([-1]) > 0
        found = self._own_candidates(owner, priors, gts, boxes, is_real)
        if found is None:
            return build_result(paddle.full([batch_size, num_priors], BACKGROUND, dtype='int64'),
                                gts, self.num_classes)
        gt_row, prior, gt_len, max_len, valid, penalised = found
        flat_prior = (gt_row // num_gts) * num_priors + prior
        iou = bbox_iou(paddle.gather(preds.bboxes.reshape([-1, 4]), flat_prior),
                       paddle.gather(boxes, gt_row), PRED_IOU_EPS)
        scores = preds.scores.reshape([-1, self.num_classes])
        labels = paddle.gather(gts.labels.reshape([-1]).astype('int64'), gt_row)
        cost = self._cost(paddle.gather(scores.reshape([-1]), flat_prior * self.num_classes
                                        + labels),
                          iou, paddle.gather(self._background(scores), flat_prior))
        gt_index, pos_iou = dynamic_k_matching(
            cost, iou, gt_row, flat_prior, paddle.cumsum(gt_len) - gt_len, gt_len, max_len,
            num_gts, batch_size * num_priors, self.dynamic_topk, valid=valid,
            penalised=penalised)
        return build_result(gt_index.reshape([batch_size, num_priors]), gts, self.num_classes,
                            pos_iou.reshape([batch_size, num_priors]))

    def _assign_image(self, priors, gts, preds):
        """``'image'`` scope, dense by blocks (``image_scope_matching``) on expanded operands;
        no host synchronisation."""
        batch_size = gts.bboxes.shape[0]
        num_priors = priors.points.shape[0]
        real = gts.mask.squeeze(-1) > 0
        near, penalised = self._image_regions(priors, gts)
        candidate = image_candidates(near, real, num_priors)
        background = self._background(preds.scores.reshape([-1, self.num_classes])).reshape(
            [batch_size, 1, num_priors])
        pair_inputs = image_pair_inputs(gts, preds, self.num_classes, PRED_IOU_EPS)

        def tables(b0, b1, g0, g1):
            p, iou = pair_inputs(b0, b1, g0, g1)
            cost = self._cost(p, iou, background[b0:b1].expand(p.shape))
            return cost, iou, penalised(b0, g0)

        gt_index = image_scope_matching(tables, candidate, real, self.dynamic_topk)
        pos_iou = matched_iou(gt_index, gts.bboxes, preds.bboxes, PRED_IOU_EPS)
        return build_result(gt_index.reshape([batch_size, num_priors]), gts, self.num_classes,
                            pos_iou)
