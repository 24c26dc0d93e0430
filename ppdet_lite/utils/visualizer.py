"""Drawing detections on images with OpenCV (what ``tools/infer.py`` writes)."""

import cv2
import numpy as np

__all__ = ['class_color', 'draw_bboxes']


def class_color(class_id):
    """A fixed BGR colour per class id: hues spaced by the golden ratio, so neighbouring ids
    differ clearly."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.uint8([[[hue, 200, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_bboxes(image, bboxes, labels, threshold=0.5, thickness=2):
    """A copy of ``image`` with the detections scoring ``>= threshold`` drawn and labelled.

    Args:
        image (ndarray): uint8 ``[h, w, 3]`` BGR (as ``cv2.imread`` returns).
        bboxes (ndarray): ``[n, 6]`` rows (class index, score, x1, y1, x2, y2) in the image's
            pixels.
        labels (list[str]): class names by class index; an index past the end is drawn as its
            number.
        threshold (float): lowest score drawn.
    Returns:
        ndarray: the drawn copy (the input is not modified).
    """
    out = image.copy()
    for cls, score, x1, y1, x2, y2 in np.asarray(bboxes, dtype=np.float64).reshape(-1, 6):
        if score < threshold:
            continue
        cls = int(cls)
        color = class_color(cls)
        top_left = (int(round(x1)), int(round(y1)))
        cv2.rectangle(out, top_left, (int(round(x2)), int(round(y2))), color, thickness)
        name = labels[cls] if 0 <= cls < len(labels) else str(cls)
        text = f'{name} {score:.2f}'
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        # the label sits on the box's top edge, inside the image when the box touches the top
        top = max(top_left[1] - th - base, 0)
        cv2.rectangle(out, (top_left[0], top), (top_left[0] + tw, top + th + base), color, -1)
        cv2.putText(out, text, (top_left[0], top + th), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return out
