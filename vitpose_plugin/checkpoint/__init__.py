"""Checkpoint I/O: loading that never runs foreign code, and one conversion of every
known layout (official ViTPose, MMPose, MAE, Hugging Face transformers, the TransPose and
TokenPose authors') into the plugin's."""
from .convert import convert_on_load, detect_layout, to_plugin_layout
from .safe_load import (
                        TRUST_ENV,
                        UntrustedCheckpointError,
                        load_state_dict_file,
                        trusted_checkpoints,
                        unwrap_state_dict,
)

__all__ = ['TRUST_ENV', 'UntrustedCheckpointError', 'convert_on_load', 'detect_layout',
           'load_state_dict_file', 'to_plugin_layout', 'trusted_checkpoints',
           'unwrap_state_dict']
