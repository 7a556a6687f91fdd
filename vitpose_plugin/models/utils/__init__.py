from .fp32_cast import to_fp32
from .fp32_heatmaps import fp32_heatmaps, fp32_output
from .position_encoding import sincos_position_embedding, sine_position_encoding

__all__ = ['fp32_heatmaps', 'fp32_output', 'sincos_position_embedding',
           'sine_position_encoding', 'to_fp32']
