"""jaxseg: label-efficient 3D semantic segmentation of indoor point clouds in JAX.

  model = jaxseg.load("workdirs/scannet_svc_demo")   # a trained run (jaxseg.inference)
  labels = model.predict(points, colors)
"""

__version__ = "0.1.0"


def __getattr__(name: str):
  # `load` imports jax and the models; a plain `import jaxseg` (the command line) stays light.
  if name == "load":
    from jaxseg.inference.segmenter import load  # pylint: disable=import-outside-toplevel
    return load
  raise AttributeError(f"module 'jaxseg' has no attribute {name!r}")
