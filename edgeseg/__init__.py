"""edgeseg: language-guided lightweight semantic segmentation for edge devices.

    import edgeseg
    model = edgeseg.load("runs/demo/best.pt")     # or an exported artifact
    mask = model.predict("photo.jpg")            # [H, W] indices into model.classes
"""
from edgeseg.api import Model, list_backbones, list_heads, list_presets, load
from edgeseg.card import build_model, load_model, make_card

__version__ = "0.1.0"
__all__ = ["Model", "load", "list_backbones", "list_heads", "list_presets", "build_model", "load_model",
           "make_card", "__version__"]
