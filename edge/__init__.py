"""mnist-edge's on-device runtime: numpy plus one interpreter, never TensorFlow.

It is also the bottom layer of the toolkit: `train`, `export` and `benchmarks` build on the small
helpers here (errors, atomic writes, provenance), never the other way round.
"""

__version__ = "0.1.0"
