"""Draw detections on an image with OpenCV (deploy side; numpy + OpenCV only)."""

import cv2
import numpy as np

__all__ = ['draw_detections', 'color_of']


def color_of(class_id):
    """A fixed, distinct BGR colour per class id (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.uint8([[[hue, 200, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_detections(image, dets, labels, threshold=0.5):
    """A copy of ``image`` (uint8 BGR ``[h, w, 3]``) with the detections scoring at least
    ``threshold`` drawn as boxes labelled ``<name> <score>``.

    Args:
        dets (ndarray): ``[n, 6]`` (class, score, x1, y1, x2, y2) in the image's pixels.
        labels (list[str]): class names by class id (an id past the end is drawn as its number).
    """
    out = image.copy()
    for cls, score, x1, y1, x2, y2 in np.asarray(dets).reshape(-1, 6):
        if score < threshold:
            continue
        cls = int(cls)
        color = color_of(cls)
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, color, 2)
        name = labels[cls] if 0 <= cls < len(labels) else str(cls)
        text = f'{name} {score:.2f}'
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(p1[1] - th - base, 0)
        cv2.rectangle(out, (p1[0], top), (p1[0] + tw, top + th + base), color, -1)
        cv2.putText(out, text, (p1[0], top + th), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out
