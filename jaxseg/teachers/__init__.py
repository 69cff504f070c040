"""2D teachers: DINO/DINOv2 ViTs from official checkpoints (torch-free) and a no-weights
fallback. Importing this package registers them in `jaxseg.models.registry.TEACHERS`."""

from jaxseg.teachers.teacher import TEACHER_SPECS, Teacher, build_teacher, sample_features

__all__ = ["TEACHER_SPECS", "Teacher", "build_teacher", "sample_features"]
