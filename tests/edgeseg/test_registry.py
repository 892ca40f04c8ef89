"""The one registry helper: lookups and comma lists fail as one line naming what is valid, everywhere."""
import pytest

from edgeseg.errors import UserError
from edgeseg.registry import Registry


def test_lookup_register_and_choose():
    things = Registry("thing", {"a": 1}, extra=("all",))

    @things.register("b")
    def b():
        return 2

    assert things.lookup("a") == 1 and things.lookup("b") is b and list(things) == ["a", "b"]
    with pytest.raises(UserError, match=r"^unknown thing 'c'; valid: a, b, all$"):
        things.lookup("c")
    with pytest.raises(UserError, match=r"^--flag: unknown thing 'c'"):
        things.lookup("c", where="--flag")
    assert things.choose(" a, b ") == ["a", "b"] and things.choose(["b"]) == ["b"] and things.check("all") == "all"
    with pytest.raises(UserError, match=r"^unknown thing\(s\) c, all; valid: a, b, all$"):
        things.choose("a,c,all")  # an extra word is the caller's to handle alone, never inside a list
    with pytest.raises(ValueError, match="registered twice"):
        things.register("a")(3)


def test_every_user_facing_table_is_a_registry():
    """Each table of names a user types is a Registry, so every wrong name gets the same one-line error."""
    from benchmarks.ablation import VARIANTS as ABLATIONS
    from benchmarks.peers import PEERS
    from benchmarks.report import STEPS
    from benchmarks.zeroshot import VARIANTS as ZEROSHOT
    from deploy.parity import PRECISIONS
    from deploy.rewrites import REWRITES
    from deploy.targets import TARGETS
    from deploy.targets.onnx import RECIPES as ONNX_RECIPES
    from deploy.targets.tflite import RECIPES as TFLITE_RECIPES
    from edgeseg.api import OUTPUTS
    from edgeseg.models import BACKBONES, HEADS
    from edgeseg.presets import PRESETS, SIZES

    tables = [ABLATIONS, PEERS, STEPS, ZEROSHOT, PRECISIONS, REWRITES, TARGETS, ONNX_RECIPES, TFLITE_RECIPES, OUTPUTS,
              BACKBONES, HEADS, PRESETS, SIZES]
    for table in tables:
        assert isinstance(table, Registry) and len(table) > 0, table
        with pytest.raises(UserError, match=rf"unknown {table.what} 'nope'; valid: "):
            table.lookup("nope")
