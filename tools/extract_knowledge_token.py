"""Take the knowledge token out of a stage-1 checkpoint into a file for stage 2.

    python tools/extract_knowledge_token.py work_dirs/stage1/epoch_5.pth token.pth

Stage 1 learns the token at the width of the student it is for (the stage-1 config's
``knowledge_token_dims``), so the student's config reads it unchanged with
``backbone=dict(knowledge_token_dims=<student width>, knowledge_token_file='token.pth',
freeze_knowledge_token=True)``.
"""
import argparse
import os.path as osp

import torch

from vitpose_plugin.checkpoint import load_state_dict_file

KEY = 'backbone.knowledge_token'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='stage-1 checkpoint (KnowledgeTokenLearner run)')
    parser.add_argument('dst', help='token file to write')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        raise SystemExit(f'error: {args.src} does not exist')
    sd = load_state_dict_file(args.src)
    if KEY not in sd:
        raise SystemExit(f'error: {args.src} has no {KEY} (is it a stage-1 checkpoint?)')
    token = sd[KEY].detach().clone()
    torch.save({'knowledge_token': token, 'source': osp.basename(args.src)}, args.dst)
    token_map = sd.get(KEY + '_map')  # (teacher width, token width) when the teacher is wider
    teacher = token.shape[-1] if token_map is None else token_map.shape[0]
    print(f'token of shape {tuple(token.shape)} (norm {token.norm():.4f}), learned in a '
          f'{teacher}-wide teacher, for a student with knowledge_token_dims='
          f'{token.shape[-1]} -> {args.dst}')


if __name__ == '__main__':
    main()
