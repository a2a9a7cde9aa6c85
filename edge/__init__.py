"""mnist-edge's on-device runtime: numpy plus one interpreter, never TensorFlow.

It is also the bottom layer of the toolkit: `train`, `export` and `benchmarks` build on the small
helpers here (errors, atomic writes, provenance), never the other way round.
"""

import os as _os

from edge.images import MAX_PIXELS as _MAX_PIXELS

__version__ = "0.1.0"

# OpenCV's own decoder refuses images over this many pixels; it reads the setting once, when cv2 loads,
# so it is set here, before any module of the package imports cv2. edge.images checks the size a
# header declares first, with a clearer message; this catches what that check cannot read (a TIFF's
# size table at the end of the file, a JPEG padded beyond the bytes it reads, GIF, JPEG 2000, ...).
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(_MAX_PIXELS))
