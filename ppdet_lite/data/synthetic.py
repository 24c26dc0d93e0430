"""Deterministic generator of the embedded detection data sets (COCO format, numpy + OpenCV).

    python -m ppdet_lite.data.synthetic                      # dataset/demo_shapes
    python -m ppdet_lite.data.synthetic --preset small_objects   # dataset/small_objects

Presets:
- ``demo_shapes`` (the demo set trained by ``scripts/train.sh``): 256x256 images, 300 train /
  60 val, five classes (circle, square, triangle, star, ring) with colours drawn independently of
  the class, on textured noisy backgrounds with clutter lines; 1-8 objects per image; sizes: 15%
  small (8-16 px), the rest log-uniform from 16 px to half the image side; overlaps allowed (an
  object stays at least half visible); every 20th image has no object.
- ``small_objects`` (a held-out "small real-looking" set for recipe studies, not the demo set):
  one class (``vehicle``: a rotated car-like rectangle with a windscreen) on aerial-like 400x400
  tiles (fields, roads, trees as unlabelled distractors), ~20 objects of 30-40 px each, 40 train /
  10 val.

Layout written under the output directory::

    train/000001.jpg ...   val/000001.jpg ...
    annotations/instances_train.json   annotations/instances_val.json
    label_list.txt         .stamp.json (generation parameters)

Boxes are exact: each object's box is the tight box of its *visible* pixels in pixel-edge
coordinates (pixel column i covers [i, i + 1), so a shape covering columns 3..9 has x = 3, w = 7),
and ``area`` is its visible pixel count. The same parameters give byte-identical JSON and images:
each image draws from its own generator seeded with ``(seed, split, index)``. Generation is skipped
when the stamp matches the requested parameters (``--force`` regenerates).
"""

import argparse
import json
import math
import os
import shutil
import sys
import time

import cv2
import numpy as np

__all__ = ['PRESETS', 'generate', 'render', 'shape_mask', 'main']

# Bumped whenever the drawing changes, so an old stamp no longer matches.
GENERATOR_VERSION = 2

PRESETS = {
    'demo_shapes': {
        'classes': ['circle', 'square', 'triangle', 'star', 'ring'],
        'background': 'textured',
        'image_size': (256, 256),
        'num_train': 300,
        'num_val': 60,
        'objects': (1, 8),
        'min_size': 8,
        'max_size_ratio': 0.5,
        # 15% small objects (8-16 px, uniform), the rest log-uniform from 16 px to the maximum:
        # small ones are present without dominating a demo that must learn in minutes
        'small': (0.15, 16),
        'empty_every': 20,
        'max_occlusion': 0.5,
    },
    'small_objects': {
        'classes': ['vehicle'],
        'background': 'aerial',
        'image_size': (400, 400),
        'num_train': 40,
        'num_val': 10,
        'objects': (14, 26),
        'min_size': 30,
        'max_size': 40,
        'empty_every': 0,
        'max_occlusion': 0.1,
    },
}

_JPEG_QUALITY = 95
# Minimum colour distance (L2 over BGR) between an object and the background under it.
_MIN_CONTRAST = 90.
_PLACEMENT_TRIES = 30


# ----------------------------------------------------------------------------------------------
# shapes


def _regular_polygon(n, radius, angle, cx, cy, inner=None):
    """Vertices of a regular n-gon (or a 2n-vertex star when ``inner`` is a radius ratio)."""
    if inner is None:
        t = angle + 2 * np.pi * np.arange(n) / n
        r = np.full(n, radius)
    else:
        t = angle + np.pi * np.arange(2 * n) / n
        r = np.where(np.arange(2 * n) % 2 == 0, radius, radius * inner)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _fill(mask, points):
    # 4 fractional bits: vertices keep sub-pixel positions, so small shapes keep their form
    pts = np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)


def shape_mask(height, width, shape, cx, cy, size, angle):
    """Binary mask (uint8 [height, width], 1 inside) of one shape.

    Args:
        shape (str): circle, square, triangle, star, ring or vehicle.
        cx, cy (float): centre in pixels; size (float): outer diameter (vehicle: length) in pixels;
        angle (float): rotation in radians (ignored by circle and ring).
    """
    mask = np.zeros((height, width), np.uint8)
    r = size / 2.
    if shape in ('circle', 'ring'):
        cv2.circle(mask, (int(round(cx * 16)), int(round(cy * 16))), int(round(r * 16)), 1, -1,
                   lineType=cv2.LINE_8, shift=4)
        if shape == 'ring':
            hole = np.zeros_like(mask)
            cv2.circle(hole, (int(round(cx * 16)), int(round(cy * 16))),
                       int(round(r * 0.55 * 16)), 1, -1, lineType=cv2.LINE_8, shift=4)
            mask &= 1 - hole
    elif shape == 'square':
        _fill(mask, _regular_polygon(4, r, angle, cx, cy))
    elif shape == 'triangle':
        _fill(mask, _regular_polygon(3, r, angle, cx, cy))
    elif shape == 'star':
        _fill(mask, _regular_polygon(5, r, angle, cx, cy, inner=0.45))
    elif shape == 'vehicle':
        _fill(mask, _rotated_rect(cx, cy, size, size * 0.48, angle))
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return mask


def _rotated_rect(cx, cy, length, breadth, angle):
    c, s = math.cos(angle), math.sin(angle)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * [length / 2, breadth / 2]
    return corners @ np.array([[c, s], [-s, c]]) + [cx, cy]


# ----------------------------------------------------------------------------------------------
# backgrounds


def _smooth_noise(rng, height, width, cell, channels=3):
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.random((height // cell + 2, width // cell + 2, channels)).astype(np.float32)
    up = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(up.reshape(height, width, channels), 0., 1.)


def _shapes_background(rng, height, width):
    base = rng.uniform(40, 215, size=3)
    texture = (_smooth_noise(rng, height, width, 48) - 0.5) * rng.uniform(40, 120)
    fine = (_smooth_noise(rng, height, width, 6) - 0.5) * rng.uniform(10, 40)
    img = np.clip(base + texture + fine, 0, 255).astype(np.uint8)
    # clutter: thin lines that are not objects
    for _ in range(int(rng.integers(0, 7))):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.line(img, p1, p2, colour, int(rng.integers(1, 3)), lineType=cv2.LINE_AA)
    return img


def _aerial_background(rng, height, width):
    """Fields (irregular patches of greens and browns), roads, trees (dark blobs)."""
    palette = np.array([[60, 110, 80], [50, 130, 110], [70, 100, 120], [90, 140, 150],
                        [60, 90, 70], [100, 120, 130]], np.float32)  # BGR
    img = np.empty((height, width, 3), np.float32)
    img[:] = palette[rng.integers(len(palette))]
    for _ in range(int(rng.integers(4, 9))):
        pts = np.stack([rng.uniform(-50, width + 50, 5), rng.uniform(-50, height + 50, 5)], 1)
        hull = cv2.convexHull(pts.astype(np.int32))
        cv2.fillPoly(img, [hull], palette[rng.integers(len(palette))].tolist())
    img += (_smooth_noise(rng, height, width, 40) - 0.5) * 50
    img += (_smooth_noise(rng, height, width, 4) - 0.5) * 30
    for _ in range(int(rng.integers(1, 4))):
        horizontal = rng.random() < 0.5
        pos = rng.uniform(0.1, 0.9) * (height if horizontal else width)
        tilt = rng.uniform(-0.3, 0.3) * (width if horizontal else height)
        p1 = (0, pos) if horizontal else (pos, 0)
        p2 = (width, pos + tilt) if horizontal else (pos + tilt, height)
        grey = float(rng.uniform(90, 150))
        cv2.line(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), (grey,) * 3,
                 int(rng.integers(18, 34)), lineType=cv2.LINE_AA)
    for _ in range(int(rng.integers(10, 40))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(img, centre, int(rng.integers(4, 14)),
                   (float(rng.uniform(20, 50)), float(rng.uniform(50, 80)),
                    float(rng.uniform(20, 45))), -1, lineType=cv2.LINE_AA)
    return np.clip(img, 0, 255).astype(np.uint8)


_BACKGROUNDS = {'textured': _shapes_background, 'aerial': _aerial_background}


# ----------------------------------------------------------------------------------------------
# one image


def render(height, width, objects, background=None, noise_sigma=0., rng=None):
    """Draw ``objects`` in order (later ones on top) and return the image and their boxes.

    Args:
        height, width (int): image size in pixels.
        objects (list[dict]): ``{'shape', 'cx', 'cy', 'size', 'angle', 'colour' (BGR)}``; a
            ``vehicle`` also takes ``'detail'`` (BGR of its windscreen).
        background (np.ndarray | None): uint8 [height, width, 3] BGR, black when None.
        noise_sigma (float): std of Gaussian pixel noise added after drawing (grey levels).
        rng (np.random.Generator | None): source of the noise (required when noise_sigma > 0).

    Returns:
        image uint8 [height, width, 3] BGR; boxes float64 [k, 4] COCO ``[x, y, w, h]`` of the
        visible pixels in pixel-edge coordinates; areas int64 [k] visible pixel counts; ``k`` is
        the number of objects still visible (``keep`` int64 [k] their indices into ``objects``).
    """
    image = np.zeros((height, width, 3), np.uint8) if background is None else background.copy()
    owner = np.full((height, width), -1, np.int32)
    for i, obj in enumerate(objects):
        mask = shape_mask(height, width, obj['shape'], obj['cx'], obj['cy'], obj['size'],
                          obj['angle']).astype(bool)
        image[mask] = obj['colour']
        owner[mask] = i
        if obj['shape'] == 'vehicle':
            screen = shape_mask(height, width, 'vehicle', obj['cx'] + 0.18 * obj['size'] *
                                math.cos(obj['angle']), obj['cy'] + 0.18 * obj['size'] *
                                math.sin(obj['angle']), obj['size'] * 0.3, obj['angle'])
            image[screen.astype(bool) & mask] = obj['detail']
    if noise_sigma > 0:
        noisy = image.astype(np.float32) + rng.normal(0., noise_sigma, image.shape)
        image = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    boxes, areas, keep = [], [], []
    for i in range(len(objects)):
        ys, xs = np.nonzero(owner == i)
        if len(xs) == 0:
            continue
        x1, y1 = int(xs.min()), int(ys.min())
        boxes.append([x1, y1, int(xs.max()) + 1 - x1, int(ys.max()) + 1 - y1])
        areas.append(len(xs))
        keep.append(i)
    return (image, np.array(boxes, np.float64).reshape(-1, 4), np.array(areas, np.int64),
            np.array(keep, np.int64))


# Car paints (BGR): white, silver, grey, black, red, blue, dark green, beige.
_VEHICLE_PAINTS = np.array([[225, 228, 230], [180, 182, 178], [115, 115, 118], [38, 40, 45],
                            [45, 45, 170], [150, 85, 40], [50, 80, 45], [150, 185, 200]])


def _contrasting_colour(rng, background, mask, palette=None):
    """A random colour (from ``palette`` with jitter, if given) that stands out from the
    background under ``mask``; the last draw when 20 draws all fail."""
    under = background[mask].reshape(-1, 3).mean(0)
    for _ in range(20):
        if palette is None:
            colour = rng.integers(0, 256, size=3)
        else:
            jitter = rng.integers(-20, 21, size=3)
            colour = np.clip(palette[rng.integers(len(palette))] + jitter, 0, 255)
        if np.linalg.norm(colour - under) >= _MIN_CONTRAST:
            break
    return [int(c) for c in colour]


def _size_range(preset, height, width):
    """(min, max) object size in pixels for an image of this size."""
    if 'max_size' in preset:
        return preset['min_size'], preset['max_size']
    return preset['min_size'], preset['max_size_ratio'] * min(height, width)


def _draw_size(rng, preset, min_size, max_size):
    """An object size (pixels): log-uniform in [min, max], or the preset's small/large mixture."""
    if 'small' in preset:
        fraction, upper = preset['small']
        if rng.random() < fraction:
            return float(rng.uniform(min_size, upper))
        min_size = upper
    return float(np.exp(rng.uniform(np.log(min_size), np.log(max_size))))


def _layout(rng, preset, height, width, num_objects, background):
    """Random objects for one image; each stays at least (1 - max_occlusion) visible."""
    classes = preset['classes']
    min_size, max_size = _size_range(preset, height, width)
    objects, masks, areas, cls_ids = [], [], [], []
    for _ in range(num_objects):
        for _ in range(_PLACEMENT_TRIES):
            cls = int(rng.integers(len(classes)))
            size = _draw_size(rng, preset, min_size, max_size)
            margin = size / 2.
            cx = float(rng.uniform(margin, width - margin))
            cy = float(rng.uniform(margin, height - margin))
            angle = float(rng.uniform(0, 2 * np.pi))
            mask = shape_mask(height, width, classes[cls], cx, cy, size, angle).astype(bool)
            if not mask.any():
                continue
            # the new object is drawn on top: it may hide only a part of each earlier one
            if any((m & ~mask).sum() < (1 - preset['max_occlusion']) * a
                   for m, a in zip(masks, areas)):
                continue
            vehicle = classes[cls] == 'vehicle'
            obj = {'shape': classes[cls], 'cx': cx, 'cy': cy, 'size': size, 'angle': angle,
                   'colour': _contrasting_colour(rng, background, mask,
                                                 _VEHICLE_PAINTS if vehicle else None)}
            if vehicle:
                obj['detail'] = [int(c * 0.35) for c in obj['colour']]
            masks = [m & ~mask for m in masks] + [mask]
            areas.append(int(mask.sum()))
            objects.append(obj)
            cls_ids.append(cls)
            break
    return objects, cls_ids


def _sample_image(preset, seed, split_id, index, height, width):
    rng = np.random.default_rng([seed, split_id, index])
    draw_background = _BACKGROUNDS[preset['background']]
    background = draw_background(rng, height, width)
    empty_every = preset['empty_every']
    if empty_every and index % empty_every == empty_every - 1:
        num = 0
    else:
        num = int(rng.integers(preset['objects'][0], preset['objects'][1] + 1))
    objects, cls_ids = _layout(rng, preset, height, width, num, background)
    image, boxes, areas, keep = render(height, width, objects, background,
                                       noise_sigma=float(rng.uniform(3, 10)), rng=rng)
    return image, boxes, areas, [cls_ids[i] for i in keep]


# ----------------------------------------------------------------------------------------------
# data set


def _write_split(out_dir, split, split_id, preset, seed, count, height, width):
    os.makedirs(os.path.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        image, boxes, areas, cls_ids = _sample_image(preset, seed, split_id, index, height, width)
        file_name = f'{index + 1:06d}.jpg'
        if not cv2.imwrite(os.path.join(out_dir, split, file_name), image,
                           [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
            raise OSError(f'cannot write {os.path.join(out_dir, split, file_name)}')
        image_id = index + 1
        images.append({'id': image_id, 'file_name': file_name, 'height': height, 'width': width})
        for box, area, cls in zip(boxes, areas, cls_ids):
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                                'category_id': cls + 1, 'bbox': [float(v) for v in box],
                                'area': float(area), 'iscrowd': 0})
    categories = [{'id': i + 1, 'name': name, 'supercategory': 'object'}
                  for i, name in enumerate(preset['classes'])]
    content = {'info': {'description': f'ppdet_lite synthetic {split} split',
                        'version': str(GENERATOR_VERSION)},
               'images': images, 'annotations': annotations, 'categories': categories}
    with open(os.path.join(out_dir, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(content, f, sort_keys=True, separators=(',', ':'))
    return len(images), len(annotations)


def _params(preset_name, seed, num_train, num_val, image_size):
    preset = PRESETS[preset_name]
    height, width = image_size if image_size else preset['image_size']
    return {'preset': preset_name, 'seed': int(seed), 'version': GENERATOR_VERSION,
            'num_train': int(preset['num_train'] if num_train is None else num_train),
            'num_val': int(preset['num_val'] if num_val is None else num_val),
            'image_size': [int(height), int(width)]}


def generate(output_dir=None, preset='demo_shapes', seed=0, num_train=None, num_val=None,
             image_size=None, force=False):
    """Write a data set (see the module docstring); returns ``(output_dir, generated: bool)``.

    Args:
        output_dir (str | None): defaults to ``dataset/<preset>``.
        preset (str): a key of ``PRESETS``.
        seed (int): base seed; images depend only on (seed, split, index).
        num_train, num_val (int | None): image counts (preset defaults when None).
        image_size (tuple[int, int] | None): (height, width) in pixels (preset default when None).
        force (bool): regenerate even when the stamp matches.

    Raises:
        ValueError: unknown preset, bad counts or sizes.
        FileExistsError: ``output_dir`` holds files but no stamp of this generator (not
            overwritten unless ``force``).
    """
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose one of {sorted(PRESETS)}')
    params = _params(preset, seed, num_train, num_val, image_size)
    height, width = params['image_size']
    spec = PRESETS[preset]
    min_size, max_size = _size_range(spec, height, width)
    min_size = max(min_size, spec.get('small', (0, 0))[1])
    if max_size < min_size or min(height, width) < max_size:
        raise ValueError(f'image_size {height}x{width} is too small for preset {preset!r} '
                         f'(objects of {min_size}-{max_size:g} px must fit)')
    if params['num_train'] < 0 or params['num_val'] < 0:
        raise ValueError(f'num_train and num_val must be >= 0, got {params["num_train"]}, '
                         f'{params["num_val"]}')
    output_dir = output_dir or os.path.join('dataset', preset)
    stamp_path = os.path.join(output_dir, '.stamp.json')
    annotations = [os.path.join(output_dir, 'annotations', f'instances_{split}.json')
                   for split in ('train', 'val')]
    if os.path.isfile(stamp_path) and all(map(os.path.isfile, annotations)) and not force:
        with open(stamp_path) as f:
            if json.load(f) == params:
                return output_dir, False
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not os.path.isfile(stamp_path) \
            and not force:
        raise FileExistsError(f'{output_dir!r} is not empty and was not written by this '
                              f'generator; pass --force to overwrite it')
    for sub in ('train', 'val', 'annotations'):
        shutil.rmtree(os.path.join(output_dir, sub), ignore_errors=True)
    if os.path.isfile(stamp_path):
        os.remove(stamp_path)
    os.makedirs(os.path.join(output_dir, 'annotations'), exist_ok=True)
    for split_id, split in enumerate(('train', 'val')):
        _write_split(output_dir, split, split_id, spec, seed, params[f'num_{split}'], height,
                     width)
    with open(os.path.join(output_dir, 'label_list.txt'), 'w') as f:
        f.write('\n'.join(spec['classes']) + '\n')
    # the stamp is written last: an interrupted run is redone next time
    with open(stamp_path + '.tmp', 'w') as f:
        json.dump(params, f, sort_keys=True)
    os.replace(stamp_path + '.tmp', stamp_path)
    return output_dir, True


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m ppdet_lite.data.synthetic',
        description='Write a deterministic synthetic COCO-format detection data set '
                    '(train/ and val/ JPEGs, annotations/instances_{train,val}.json, '
                    'label_list.txt). Does nothing when the output already matches.')
    parser.add_argument('--preset', default='demo_shapes', choices=sorted(PRESETS),
                        help='demo_shapes: 5 shape classes, the demo set (default); '
                             'small_objects: one class of ~35 px vehicles on 400 px aerial-like '
                             'tiles, a held-out set for recipe studies')
    parser.add_argument('--output_dir', default=None,
                        help='output directory (default: dataset/<preset>)')
    parser.add_argument('--seed', type=int, default=0, help='base random seed (default: 0)')
    parser.add_argument('--num_train', type=int, default=None,
                        help='number of train images (default: 300 demo_shapes, 40 '
                             'small_objects)')
    parser.add_argument('--num_val', type=int, default=None,
                        help='number of val images (default: 60 demo_shapes, 10 small_objects)')
    parser.add_argument('--image_size', type=int, nargs='+', default=None, metavar='SIZE',
                        help='image size in pixels: one value (square) or HEIGHT WIDTH '
                             '(default: 256 demo_shapes, 400 small_objects)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if the output exists with the same parameters')
    args = parser.parse_args(argv)
    if args.image_size is not None:
        if len(args.image_size) > 2:
            parser.error(f'--image_size takes 1 or 2 values, got {args.image_size}')
        if len(args.image_size) == 1:
            args.image_size = args.image_size * 2
    return args


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    start = time.time()
    try:
        out, generated = generate(args.output_dir, args.preset, args.seed, args.num_train,
                                  args.num_val, args.image_size, args.force)
    except (ValueError, FileExistsError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if generated:
        counts = []
        for split in ('train', 'val'):
            with open(os.path.join(out, 'annotations', f'instances_{split}.json')) as f:
                content = json.load(f)
            counts.append(f'{split}: {len(content["images"])} images, '
                          f'{len(content["annotations"])} boxes')
        print(f'wrote {out} ({"; ".join(counts)}) in {time.time() - start:.1f} s')
    else:
        print(f'{out} is up to date (--force regenerates)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
