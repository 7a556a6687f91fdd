from .apt36k import APT36KDataset

__all__ = ['APT36KDataset']
