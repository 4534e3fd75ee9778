"""photostyle: fast photorealistic style transfer (FA layers, SCP loss, re-stylization).

Example:
    >>> from photostyle import Stylizer, load_image, save_image  # doctest: +SKIP
    >>> stylizer = Stylizer()  # the shipped model, on CUDA if available  # doctest: +SKIP
    >>> out = stylizer.stylize(load_image("photo.jpg"), load_image("look.jpg"))  # doctest: +SKIP
    >>> save_image(out, "photo_styled.png")  # doctest: +SKIP
"""

from photostyle.api import StylizeOptions, Stylizer
from photostyle.io import ImageError, load_image, load_mask, save_image
from photostyle.models.weights import WeightsError
from photostyle.version import __version__

__all__ = [
    "ImageError",
    "StylizeOptions",
    "Stylizer",
    "WeightsError",
    "__version__",
    "load_image",
    "load_mask",
    "save_image",
]
