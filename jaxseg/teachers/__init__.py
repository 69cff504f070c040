"""2D teachers: DINO/DINOv2 ViTs from official checkpoints (torch-free) and a no-weights
fallback. Importing this package registers them in `jaxseg.models.registry.TEACHERS`."""

from jaxseg.teachers.teacher import TEACHER_SPECS, Teacher, build_teacher, sample_features



def teacher_description(name: str, checkpoint: str) -> str:
  """How reports name a teacher; the fallback says plainly that it is not DINO."""
  if name == "fallback":
    return "fallback_not_dino (no-weights colour/texture filters, NOT DINO)"
  return f"{name} ({checkpoint})"


__all__ = ["TEACHER_SPECS", "Teacher", "build_teacher", "sample_features",
           "teacher_description"]
