"""Python entry points beside MMPose's own APIs."""
from .model_index import model_alias, plugin_models

__all__ = ['model_alias', 'plugin_models']
