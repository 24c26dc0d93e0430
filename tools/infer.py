"""Detect objects in images with trained weights:
``python tools/infer.py -c CONFIG -o weights=W --infer_img x.jpg | --infer_dir DIR
[--draw_threshold 0.5] [--output_dir output] [--save_results]``.

Writes each image with its detections (score >= ``--draw_threshold``) drawn and labelled to
``--output_dir`` under its own file name (an ``--infer_dir`` run keeps the path relative to it;
the input directory itself is refused as ``--output_dir``); ``--save_results`` also writes
``bbox.json`` there: every detection in COCO's result format (``image_id``: the id of the image's
file name in the TestDataset's COCO annotation file, else its position in the run;
``category_id`` from that file, ``bbox`` [x, y, w, h] in original pixels, ``score``) plus the
image's ``file_name``. An unreadable ``--infer_img`` is an error naming it; in an ``--infer_dir``
run an unreadable image is skipped with a warning, and a directory of which none is readable is
an error.
"""

import json
import os
import sys

# Runnable from a checkout without installing, as PaddleDetection's tools are.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from ppdet_lite.utils.cli import ArgsParser  # noqa: E402


def parse(argv=None):
    """(parser, args, cfg) from the command line."""
    parser = ArgsParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--infer_img', default=None, help='an image file')
    source.add_argument('--infer_dir', default=None, help='a directory of images (recursive)')
    parser.add_argument('--draw_threshold', type=float, default=0.5,
                        help='lowest score drawn, in [0, 1] (default 0.5)')
    parser.add_argument('--output_dir', default='output', help='where results go')
    parser.add_argument('--save_results', action='store_true',
                        help='also write the detections to <output_dir>/bbox.json (image_id: the id '
                             "of the file name in the TestDataset's COCO annotation file, else "
                             'the position in the run)')
    return (parser, *parser.parse_config(argv))


def main(argv=None):
    """Returns ``[(image file, detections [n, 6])]`` (class, score, x1, y1, x2, y2)."""
    parser, args, cfg = parse(argv)
    if not cfg.get('weights'):
        parser.error('no weights: pass -o weights=path/to/model_final')
    if not 0. <= args.draw_threshold <= 1.:
        parser.error(f'--draw_threshold must be in [0, 1], got {args.draw_threshold}')
    source = args.infer_dir if args.infer_dir else os.path.dirname(args.infer_img) or '.'
    if os.path.realpath(args.output_dir) == os.path.realpath(source):
        parser.error(f'--output_dir {args.output_dir} is the directory of the input images: the '
                     f'drawn images would overwrite them; choose another --output_dir')

    import cv2

    from ppdet_lite.data.transforms import ImageDecodeError
    from ppdet_lite.engine.infer import Predictor, coco_results, list_images
    from ppdet_lite.utils.visualizer import draw_bboxes
    try:
        images = list_images(args.infer_img, args.infer_dir)
        predictor = Predictor(cfg)
        predictions = predictor.predict(images, skip_unreadable=args.infer_dir is not None)
    except (ImageDecodeError, FileNotFoundError, ValueError) as e:
        parser.exit(1, f'infer.py: error: {e}\n')

    if not predictions:
        parser.exit(1, f'infer.py: error: --infer_dir {args.infer_dir}: none of its '
                       f'{len(images)} images could be read\n')
    for im_file, dets in predictions:
        drawn = draw_bboxes(cv2.imread(im_file), dets, predictor.labels, args.draw_threshold)
        relative = (os.path.relpath(im_file, args.infer_dir) if args.infer_dir
                    else os.path.basename(im_file))
        out_file = os.path.join(args.output_dir, relative)
        os.makedirs(os.path.dirname(out_file) or '.', exist_ok=True)
        cv2.imwrite(out_file, drawn)
        shown = dets[dets[:, 1] >= args.draw_threshold]
        print(f'{im_file}: {len(dets)} detections, {len(shown)} >= {args.draw_threshold} drawn '
              f'to {out_file}')
        for cls, score, x1, y1, x2, y2 in shown:
            print(f'  {predictor.labels[int(cls)]} {score:.3f} '
                  f'[{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]')
    if args.save_results:
        path = os.path.join(args.output_dir, 'bbox.json')
        with open(path, 'w') as f:
            json.dump(coco_results(predictions, predictor.clsid2catid, predictor.file_ids), f)
        print(f'detections of {len(predictions)} images written to {path}')
    return predictions


if __name__ == '__main__':
    main()
