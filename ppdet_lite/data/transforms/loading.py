"""Loading: turning a record's file into an image."""

__all__ = ['ImageDecodeError']


class ImageDecodeError(ValueError):
    """An image file that cannot be read or decoded; the message names the file.

    Datasets catch it to skip the image with a warning during training.
    """
