from .apt36k import APT36KDataset
from .transforms import WholeImageBBox

__all__ = ['APT36KDataset', 'WholeImageBBox']
