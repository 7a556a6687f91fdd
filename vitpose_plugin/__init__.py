"""ViTPose and friends for MMPose 1.x.

``import vitpose_plugin`` (or ``custom_imports=dict(imports=['vitpose_plugin'])``)
registers the plugin's modules in MMPose's registries.
"""
from . import apis, checkpoint, datasets, deploy, engine, models  # noqa: F401
from .version import __version__  # noqa: F401
