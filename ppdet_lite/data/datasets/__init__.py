"""Detection datasets: records of image file, boxes (x1y1x2y2 pixels) and contiguous class ids."""
