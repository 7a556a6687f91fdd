from .fp32_heatmaps import fp32_heatmaps
from .position_encoding import sincos_position_embedding, sine_position_encoding

__all__ = ['fp32_heatmaps', 'sincos_position_embedding', 'sine_position_encoding']
