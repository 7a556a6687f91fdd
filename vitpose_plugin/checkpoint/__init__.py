"""Checkpoint I/O: weights_only-safe loading and ViT layout conversion."""
from .loader import load_from_local  # noqa: F401  (registers the local loader)
from .vit_layouts import convert_vit_backbone, detect_layout  # noqa: F401
