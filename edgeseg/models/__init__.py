"""Models: backbones (timm), fusion module, heads, and the composed segmenter."""
from edgeseg.models.backbone import BACKBONES, Backbone, load_pretrained
from edgeseg.models.heads import CLASS_AGNOSTIC_HEADS, HEADS, build_head
from edgeseg.models.segmenter import OpenVocabSegmenter, Segmenter

__all__ = ["BACKBONES", "HEADS", "CLASS_AGNOSTIC_HEADS", "Backbone", "Segmenter", "OpenVocabSegmenter",
           "build_head", "load_pretrained"]
