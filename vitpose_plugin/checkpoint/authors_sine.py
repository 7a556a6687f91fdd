"""The fixed sine table that the TransPose and TokenPose authors store as a parameter.

Their code keeps the 2-D sine encoding as a frozen ``nn.Parameter`` (``pos_embedding``,
(h*w, 1, d) in TransPose, (1, h*w, d) in TokenPose), so it is in their checkpoints. The
plugin computes the same table at run time; a file's table is dropped only after it is
found equal to the plugin's for some h x w grid of its size. A table that differs is a
learned encoding, which the plugin's models do not have.
"""
import torch

# The authors normalise positions by (size + 1e-6) and the plugin by size: the tables
# differ by < 1e-6 (see the test); anything learned differs by orders of magnitude more.
ATOL = 1e-5


def check_and_drop(table: torch.Tensor, key: str) -> str:
    """Return a note if ``table`` is the plugin's sine table of some grid, else raise
    ``ValueError`` naming ``key``."""
    from ..models.utils.position_encoding import sine_position_encoding
    from .allowlist import CheckpointError, current_source
    from .convert import MAX_TOKENS, divisor_pairs
    n, d = (table.numel() // table.shape[-1], table.shape[-1]) if table.dim() and \
        table.shape[-1] else (0, 0)
    if not (1 <= n <= MAX_TOKENS and 4 <= d <= 2**16 and d % 4 == 0):
        raise CheckpointError(f'{current_source()}: {key} has shape {tuple(table.shape)}: a sine '
                              f'table has 1..{MAX_TOKENS} positions of a width divisible by 4')
    t = table.detach().float().reshape(n, d)
    for h, w in divisor_pairs(n):
        if torch.allclose(t, sine_position_encoding(d, h, w), atol=ATOL, rtol=0):
            return f'{key}: the fixed sine table of a {h}x{w} grid, computed by ' \
                   'the plugin at run time (dropped)'
    raise ValueError(f'{key} {tuple(table.shape)} is not the fixed 2-D sine table: the file '
                     'was trained with a learned position encoding, which the plugin\'s '
                     'TransPose/TokenPose models do not have')
