"""The plugin's models by name or alias, from its model index (``mim search
vitpose_plugin`` lists the same).

MMPose's ``MMPoseInferencer('vitpose-b')`` resolves aliases only in the metafiles of the
package named by its registry scope, through MMEngine's fixed table of OpenMMLab
packages, and ``vitpose-b`` is MMPose's own alias (its ViTPose with mmpretrain's
backbone). The shortest call for the plugin's models is therefore::

    from vitpose_plugin.apis import model_alias
    MMPoseInferencer(*model_alias('vitpose-b'))   # (config path, weights URL)
"""
import os.path as osp
from functools import lru_cache
from typing import Dict, Optional, Tuple

import yaml

MIM_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')


@lru_cache()
def plugin_models() -> Dict[str, dict]:
    """{name and every alias: metafile entry} of the plugin's model index."""
    with open(osp.join(MIM_DIR, 'model-index.yml')) as f:
        imports = yaml.safe_load(f)['Import']
    models = {}
    for meta in imports:
        with open(osp.join(MIM_DIR, meta)) as f:
            for model in yaml.safe_load(f)['Models']:
                aliases = model.get('Alias') or []
                for key in [model['Name']] + ([aliases] if isinstance(aliases, str) else aliases):
                    models[key.lower()] = model
    return models


def model_alias(name: str) -> Tuple[str, Optional[str]]:
    """(config file, weights URL or None) of a plugin model's name or alias."""
    models = plugin_models()
    if name.lower() not in models:
        aliases = sorted(k for k, v in models.items() if k != v['Name'])
        raise KeyError(f'{name!r} is not a model of vitpose_plugin; aliases: '
                       f'{", ".join(aliases)} (or any config name)')
    model = models[name.lower()]
    return osp.join(MIM_DIR, model['Config']), model.get('Weights')
