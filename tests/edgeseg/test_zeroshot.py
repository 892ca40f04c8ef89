"""The zero-shot protocol: split bookkeeping, hIoU, the synthetic-attributes generator, the controls,
no unseen pixel or name in training, K-independent heads, and the CLIs end to end."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeseg.config import parse_with_config, training_parser
from edgeseg.data.attributes import CLASSES, COLOURS, PATTERNS, SHAPES, UNSEEN, SyntheticAttributes, generate_scene
from edgeseg.errors import UserError
from edgeseg.metrics import ConfusionMatrix
from edgeseg.models import Segmenter
from edgeseg.train import Run
from edgeseg.zeroshot import (
    Split,
    control_names,
    harmonic_iou,
    parse_unseen,
    shuffled_rows,
    zero_shot_metrics,
)
from tests.conftest import ROOT, run_cli

SPLIT_FILE = ROOT / "configs" / "splits" / "synthetic-attributes-unseen.txt"
TINY = ["--data", "synthetic-attributes", "--unseen", str(SPLIT_FILE), "--backbone", "mobilenetv3-small",
        "--pretrained", "none", "--img-size", "64", "--batch-size", "2", "--val-limit", "4"]


# --- split bookkeeping -------------------------------------------------------------------------------------

def test_parse_unseen_forms_and_order(tmp_path):
    classes = ["sky", "grass", "road", "cow"]
    assert parse_unseen("cow, grass", classes) == ["grass", "cow"]  # class order, not the order given
    assert parse_unseen(["road"], classes) == ["road"]
    split_file = tmp_path / "split.txt"
    split_file.write_text("# held out\ncow   # an animal\n\nroad\n")
    assert parse_unseen(str(split_file), classes) == ["road", "cow"]
    assert parse_unseen(None, classes) == []


@pytest.mark.parametrize("value, message", [
    ("horse", "'horse' is not a class"),
    ("sky,grass,road,cow", "all 4 classes are unseen"),
    ("cow,cow", "listed twice"),
    (" , ", "no class names"),
])
def test_parse_unseen_errors_name_the_culprit(value, message):
    with pytest.raises(UserError, match=message):
        parse_unseen(value, ["sky", "grass", "road", "cow"])


def test_split_file_that_does_not_parse(tmp_path):
    bad = tmp_path / "split.txt"
    bad.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(UserError, match="not UTF-8"):
        parse_unseen(str(bad), ["a", "b"])
    with pytest.raises(UserError, match="not found"):
        parse_unseen(str(tmp_path / "missing.txt"), ["a", "b"])


def test_split_label_map_ignores_unseen_and_packs_seen():
    split = Split(("bg", "a", "b", "c", "d"), ("b", "d"))
    assert split.seen == ["bg", "a", "c"] and split.seen_indices == [0, 1, 3] and split.unseen_indices == [2, 4]
    mask = np.array([[0, 1, 2], [3, 4, 255]])
    np.testing.assert_array_equal(split.remap(mask), [[0, 1, 255], [2, 255, 255]])


# --- the metric ----------------------------------------------------------------------------------------------

def test_hiou_on_hand_made_confusion_matrices():
    assert harmonic_iou(0.6, 0.3) == pytest.approx(2 * 0.6 * 0.3 / 0.9)
    assert harmonic_iou(0.0, 0.0) == 0.0 and harmonic_iou(0.5, 0.0) == 0.0
    confusion = ConfusionMatrix(3)  # classes s0, s1 seen, u unseen
    # rows = label, cols = prediction: s0 10 right; s1 6 right, 2 taken by u; u 2 right, 6 taken by s0 (u predicted 4 times)
    confusion.matrix = np.array([[10, 0, 0], [0, 6, 2], [6, 0, 2]])
    summary = confusion.summary(["s0", "s1", "u"])
    iou = {"s0": 10 / 16, "s1": 6 / 8, "u": 2 / 10}  # u: union = 8 labelled + 4 predicted - 2
    assert summary["per_class_iou"] == pytest.approx(iou)
    metrics = zero_shot_metrics(summary["per_class_iou"], ["u"])
    seen = (iou["s0"] + iou["s1"]) / 2
    assert metrics["mIoU_seen"] == pytest.approx(seen) and metrics["mIoU_unseen"] == pytest.approx(2 / 10)
    assert metrics["hIoU"] == pytest.approx(2 * seen * 0.2 / (seen + 0.2))
    # a class absent from labels and predictions (IoU None) is left out, as in mIoU
    assert zero_shot_metrics({"s0": 0.5, "u": None, "u2": 0.25}, ["u", "u2"])["mIoU_unseen"] == 0.25


# --- the generator -----------------------------------------------------------------------------------------

def test_generator_is_deterministic_and_labels_are_valid():
    image, mask = generate_scene(3000, 5, 64)
    again, mask_again = generate_scene(3000, 5, 64)
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(mask, mask_again)
    other, _ = generate_scene(3000, 6, 64)
    assert not np.array_equal(image, other)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert mask.min() >= 0 and mask.max() < len(CLASSES) and len(np.unique(mask)) >= 3
    train, val = SyntheticAttributes("train", 64), SyntheticAttributes("val", 64)
    assert not np.array_equal(train.load(0)[0], val.load(0)[0])


def test_names_compose_words_and_every_unseen_word_is_seen():
    assert CLASSES[0] == "background" and len(CLASSES) == 1 + len(COLOURS) * len(PATTERNS) * len(SHAPES)
    for name in CLASSES[1:]:
        colour, pattern, shape = name.split(" ")
        assert colour in COLOURS and pattern in PATTERNS and shape in SHAPES
    seen_words = {word for name in CLASSES[1:] if name not in UNSEEN for word in name.split(" ")}
    for name in UNSEEN:
        assert set(name.split(" ")) <= seen_words, name
    assert parse_unseen(str(SPLIT_FILE), CLASSES) == [c for c in CLASSES if c in UNSEEN]  # the file is the split


def test_unseen_objects_are_drawn_in_their_colour():
    """The look follows the name: pixels of an unseen 'red ...' class are red-dominant where coloured."""
    red = CLASSES.index("red striped circle")
    for index in range(200):
        image, mask = generate_scene(3000, index, 128)
        region = mask == red
        if region.sum() > 200:
            pixels = image[region].astype(int)
            coloured = pixels[(pixels.max(1) - pixels.min(1)) > 60]  # skip the pale/dark pattern tone
            assert (coloured[:, 0] > coloured[:, 1] + 20).mean() > 0.8
            return
    pytest.fail("no large 'red striped circle' in 200 scenes")


# --- controls ----------------------------------------------------------------------------------------------

def test_controls_touch_only_unseen_rows():
    embeddings = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    out = shuffled_rows(embeddings, [1, 3, 4], seed=0)
    np.testing.assert_array_equal(out[[0, 2, 5]], embeddings[[0, 2, 5]])
    assert all(not np.array_equal(out[r], embeddings[r]) for r in (1, 3, 4))  # a derangement
    assert sorted(map(tuple, out[[1, 3, 4]])) == sorted(map(tuple, embeddings[[1, 3, 4]]))
    split = Split(("sky", "cow", "road", "sheep"), ("cow", "sheep"))
    names = control_names(split, "unrelated")
    assert names[0] == "sky" and names[2] == "road" and names[1] not in split.classes and names[1] != names[3]
    with pytest.raises(UserError):
        shuffled_rows(embeddings, [2], seed=0)


# --- training: nothing of the unseen classes reaches the loss ----------------------------------------------

def _tiny_run(tmp_path, *extra):
    args = parse_with_config(training_parser("t", ""), [*TINY, "--iters", "2", "--out", str(tmp_path), *extra])
    return Run(args)


def _record(run):
    """Wrap the run's text and loss to record the class embeddings and labels the step uses."""
    seen: dict[str, list] = {"text": [], "labels": [], "classes": []}
    text_fn, loss = run.training_text, run.compute_loss

    def recording_text():
        text = text_fn()
        seen["text"].append(None if text is None else text.detach().clone())
        return text

    def recording_loss(outputs, images, labels, extra):
        seen["labels"].append(labels.clone())
        seen["classes"].append(outputs["logits"].shape[1])
        return loss(outputs, images, labels, extra)

    run.training_text, run.compute_loss = recording_text, recording_loss
    return seen


def test_no_unseen_pixel_or_name_reaches_the_loss(tmp_path):
    run = _tiny_run(tmp_path, "--head", "denseclip", "--views", "2", "--presence-gate", "--prompt-matcher")
    assert run.card["unseen"] == parse_unseen(str(SPLIT_FILE), CLASSES) and run.card["classes"] == CLASSES
    assert run.card["head_config"]["class_agnostic"] is True
    seen = _record(run)
    loader = torch.utils.data.DataLoader(run.dataset(), batch_sampler=[[(i, i)] * 2 for i in range(6)])
    for images, labels in loader:
        run.step(images, labels)
    k_seen = len(CLASSES) - len(UNSEEN)
    full_labels = [torch.from_numpy(run.train_source.load(i)[1]) for i in range(6)]
    assert any(bool(np.isin(m.numpy(), run.split.unseen_indices).any()) for m in full_labels)  # they were there
    for labels in seen["labels"]:
        values = set(labels.unique().tolist())
        assert values <= set(range(k_seen)) | {255}, values
    assert seen["classes"] == [k_seen] * 6
    for text in seen["text"]:
        torch.testing.assert_close(text, run.model.text_embeddings[run.split.seen_indices])


def test_unseen_embeddings_do_not_change_training(tmp_path):
    """Two runs whose unseen rows differ (real vs random embeddings) train to identical weights."""
    states = []
    for randomise in (False, True):
        run = _tiny_run(tmp_path / str(randomise), "--head", "fusion", "--prompt-matcher")
        if randomise:
            with torch.no_grad():
                run.model.text_embeddings[run.split.unseen_indices] = torch.randn(len(UNSEEN), 384)
        loader = torch.utils.data.DataLoader(run.dataset(), batch_sampler=[[(i, i)] * 2 for i in range(3)])
        for images, labels in loader:
            run.step(images, labels)
        states.append({k: v for k, v in run.model.state_dict().items() if k != "text_embeddings"})
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0, msg=key)


def test_context_tokens_learn_on_seen_names_and_embed_unseen_ones(tmp_path):
    run = _tiny_run(tmp_path, "--context-tokens", "2")
    k_seen = len(CLASSES) - len(UNSEEN)
    assert run.prompt_learner.ids.shape[0] == k_seen  # the tower only ever sees the seen names
    before = run.model.text_embeddings.clone()
    run.sync_text()
    after = run.model.text_embeddings
    expected = run.prompt_learner.embed(list(run.split.unseen))
    torch.testing.assert_close(after[run.split.unseen_indices], expected)
    assert not torch.allclose(before[run.split.unseen_indices], after[run.split.unseen_indices])


# --- K-independent heads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("head, config", [("denseclip", {"class_agnostic": True}),
                                          ("fusion", {"prompt_matcher": True, "class_agnostic": True}),
                                          ("denseclip", {"class_agnostic": True, "prompt_matcher": True,
                                                         "views": 2, "presence_gate": True})])
def test_class_agnostic_models_take_any_vocabulary(head, config):
    torch.manual_seed(0)
    model = Segmenter("mobilenetv3-small", head, torch.randn(5, 16), dict(config, dim=32, heads=2)).eval()
    image = torch.randn(1, 3, 64, 64)
    for k in (1, 5, 40):
        assert model(image, torch.randn(k, 16)).shape == (1, k, 16, 16)


def test_closed_set_denseclip_keeps_its_layer_and_refuses_another_k():
    model = Segmenter("mobilenetv3-small", "denseclip", torch.randn(5, 16), {"dim": 32, "heads": 2}).eval()
    assert model.head.merge[0].in_channels == 32 + 5  # DenseCLIP's concatenated K score maps, as before
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 3, 64, 64), torch.randn(7, 16))


# --- configs and CLIs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("config, count, first", [("voc2012-zeroshot.yaml", 5, "pottedplant"),
                                                  ("cocostuff10k-zeroshot.yaml", 15, "frisbee")])
def test_public_zero_shot_configs_load_their_splits(config, count, first, tmp_path):
    args = parse_with_config(training_parser("t", ""), ["--config", str(ROOT / "configs" / config)])
    assert Path(args.unseen).is_file()
    from edgeseg.zeroshot import read_split_file
    names = read_split_file(args.unseen)
    assert len(names) == count and names[0] == first
    from edgeseg.data.classes import COCO_STUFF_CLASSES, VOC_CLASSES
    assert set(names) <= set(VOC_CLASSES if "voc" in config else COCO_STUFF_CLASSES)
    proc = run_cli("edgeseg.train", "--config", str(ROOT / "configs" / config), "--iters", "1",
                   "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --data") and "not a folder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_zero_shot_cli_end_to_end(tmp_path):
    out = tmp_path / "z"
    proc = run_cli("edgeseg.train", *TINY, "--iters", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "9 unseen" in proc.stderr and "unseen" in (out / "metrics.csv").read_text()
    proc = run_cli("edgeseg.evaluate", "--checkpoint", str(out / "last.pt"), "--limit", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    for key in ("mIoU_seen", "mIoU_unseen", "hIoU", "pixel_accuracy", "mIoU"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert len(summary["per_class_iou"]) == len(CLASSES) and summary["data"] == "synthetic-attributes"
    for control in ("shuffle", "unrelated"):
        proc = run_cli("edgeseg.evaluate", "--checkpoint", str(out / "last.pt"), "--limit", "2", "--control", control)
        assert proc.returncode == 0 and "hIoU" in proc.stdout and f"control: {control}" in proc.stdout, proc.stderr
    proc = run_cli("edgeseg.evaluate", "--checkpoint", str(out / "last.pt"), "--unseen", "red striped circle")
    assert proc.returncode == 2 and "disagrees with the checkpoint" in proc.stderr
    proc = run_cli("edgeseg.predict", "--checkpoint", str(out / "last.pt"), "--source", str(ROOT / "examples"),
                   "--classes", "background,red striped circle,blue dotted triangle", "--out", str(tmp_path / "p"))
    assert proc.returncode == 0, proc.stderr
    legend = json.loads((tmp_path / "p" / "legend.json").read_text())
    assert [e["class"] for e in legend] == ["background", "red striped circle", "blue dotted triangle"]


@pytest.mark.parametrize("flags, message", [
    (["--unseen", "purple wavy hexagon"], "'purple wavy hexagon' is not a class"),
    (["--unseen", ",".join(CLASSES)], "all 37 classes are unseen"),
])
def test_bad_unseen_is_one_line_and_writes_nothing(flags, message, tmp_path):
    args = [a for a in TINY if a not in ("--unseen", str(SPLIT_FILE))]
    proc = run_cli("edgeseg.train", *args, *flags, "--iters", "1", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_distill_takes_the_split_and_refuses_a_teacher_that_saw_unseen_classes(tmp_path):
    teacher, closed = tmp_path / "teacher", tmp_path / "closed"
    assert run_cli("edgeseg.train", *TINY, "--iters", "2", "--out", str(teacher)).returncode == 0
    plain = [a for a in TINY if a not in ("--unseen", str(SPLIT_FILE))]
    assert run_cli("edgeseg.train", *plain, "--iters", "1", "--out", str(closed)).returncode == 0
    proc = run_cli("distill.train", "--teacher", f"ckpt:{teacher / 'last.pt'}", *TINY, "--iters", "2",
                   "--out", str(tmp_path / "student"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "student" / "model_card.json").read_text())["unseen"] == \
        parse_unseen(str(SPLIT_FILE), CLASSES)
    proc = run_cli("distill.train", "--teacher", f"ckpt:{closed / 'last.pt'}", *TINY, "--iters", "2",
                   "--out", str(tmp_path / "leaky"))
    assert proc.returncode == 2 and "would leak them" in proc.stderr


def test_yaml_preset_works_exactly_like_the_flag(tmp_path):
    """Issue #16: a `preset:` key in a --config YAML used to be accepted and ignored."""
    config = tmp_path / "c.yaml"
    config.write_text("preset: mvp\nviews: 4\n")
    from_yaml = vars(parse_with_config(training_parser("t", ""), ["--config", str(config)]))
    from_flag = vars(parse_with_config(training_parser("t", ""), ["--preset", "mvp", "--views", "4"]))
    assert {k: v for k, v in from_yaml.items() if k != "config"} == {k: v for k, v in from_flag.items() if k != "config"}
    assert from_yaml["head"] == "denseclip" and from_yaml["presence_gate"] is True and from_yaml["views"] == 4
    config.write_text("preset: nonsense\n")
    with pytest.raises(UserError, match="unknown preset 'nonsense'"):
        parse_with_config(training_parser("t", ""), ["--config", str(config)])
