from .position_encoding import sincos_position_embedding, sine_position_encoding

__all__ = ['sincos_position_embedding', 'sine_position_encoding']
