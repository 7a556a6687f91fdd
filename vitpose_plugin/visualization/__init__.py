from .attention_maps import KeypointAttention, overlay_attention

__all__ = ['KeypointAttention', 'overlay_attention']
