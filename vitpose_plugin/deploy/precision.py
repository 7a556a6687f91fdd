"""bf16 / fp16 inference for the plugin's estimators (``test_cfg.precision``).

The network runs under ``torch.autocast`` (CPU: bf16; GPU: bf16 or fp16) and every
head's heatmaps are returned in fp32, so MMPose's decoding, flip test and metrics
work unchanged. Set it in a config (``model.test_cfg.precision='bf16'``), with
``--cfg-options model.test_cfg.precision=bf16`` for ``mim test``, or on a built model
(``model.test_cfg['precision'] = 'bf16'`` before ``inference_topdown``).
"""
import contextlib
import functools

import torch

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def _to_fp32(output):
    if isinstance(output, torch.Tensor):
        return output.float()
    if isinstance(output, (tuple, list)):
        return type(output)(o.float() if isinstance(o, torch.Tensor) else o for o in output)
    return output


def _fp32_forward(forward, *args, **kwargs):
    return _to_fp32(forward(*args, **kwargs))


@contextlib.contextmanager
def inference_precision(model, device_type: str):
    """Run ``model``'s forward passes at ``model.test_cfg['precision']``."""
    name = (getattr(model, 'test_cfg', None) or {}).get('precision', 'fp32')
    if name not in PRECISIONS:
        raise ValueError(f'test_cfg.precision={name!r}; choose one of {sorted(PRECISIONS)}')
    if PRECISIONS[name] is None:
        yield
        return
    heads = list(getattr(model, 'heads', {}).values())  # multi-dataset estimators
    if getattr(model, 'head', None) is not None:
        heads.append(model.head)
    # MMPose calls head.forward() directly (no hooks run), so wrap the method itself
    for head in heads:
        head.forward = functools.partial(_fp32_forward, head.forward)
    try:
        with torch.autocast(device_type=device_type, dtype=PRECISIONS[name]):
            yield
    finally:
        for head in heads:
            del head.forward  # back to the class's method
