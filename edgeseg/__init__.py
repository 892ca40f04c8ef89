"""edgeseg: language-guided lightweight semantic segmentation for edge devices."""
from edgeseg.card import build_model, load_model, make_card

__version__ = "0.1.0"
__all__ = ["build_model", "load_model", "make_card", "__version__"]
