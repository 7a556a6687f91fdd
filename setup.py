import os.path as osp

from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'vitpose_plugin', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(fname):
    path = osp.join(osp.dirname(__file__), 'requirements', fname)
    with open(path) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


setup(
    name='vitpose_plugin',
    version=read_version(),
    description='ViTPose, ViTPose+ and other pose transformers as an MMPose 1.x plugin',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['vitpose_plugin', 'vitpose_plugin.*']),
    # the model index and configs, where mim search and model_alias look for them
    # (symbolic links in the source tree; copied into wheels)
    package_data={'vitpose_plugin': ['.mim/model-index.yml', '.mim/configs/**/*.py',
                                     '.mim/configs/**/*.yml']},
    include_package_data=True,
    python_requires='>=3.8',
    # torch, mmcv (compiled with ops), mmpose and openmim are installed by
    # scripts/setup_env.sh: mmcv has no wheel for recent torch and mmpose/openmim
    # must be installed without their broken dependencies (see README).
    install_requires=read_requirements('runtime.txt'),
    extras_require=dict(tests=read_requirements('tests.txt')),
    license='Apache License 2.0',
)
