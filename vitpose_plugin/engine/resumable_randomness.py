"""Resuming that draws the same random numbers as a run that never stopped.

MMEngine's ``--resume`` restores the weights, the optimiser, the schedulers, the seed and
the data order, but not the position of torch's random stream: after a restart, every
dropout and drop-path mask (ViTPose's ``drop_path_rate`` is 0.1-0.55) comes from a stream
that starts again at the seed, so the resumed run trains a different model.
:class:`ResumableRandomnessHook` seeds torch's generators before every training iteration
from ``(seed, iteration, rank)``; what an iteration draws then depends on nothing that a
restart loses. NumPy and Python ``random`` belong to the data pipeline, which MMEngine
replays itself, and are left alone.

Every shipped training config lists it in ``custom_hooks``.
"""
import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpose.registry import HOOKS


@HOOKS.register_module()
class ResumableRandomnessHook(Hook):
    """Seeds ``torch`` (CPU and every GPU) before each training iteration.

    The seed mixes ``runner.seed`` (which a resumed run reads back from the checkpoint),
    the global iteration and, when ``randomness.diff_rank_seed`` is set, the rank.
    """

    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        rank = get_rank() if runner._randomness_cfg.get('diff_rank_seed', False) else 0
        state = np.random.SeedSequence([runner.seed, runner.iter, rank]).generate_state(2)
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))
