"""Zero-shot classification, measured: templates, the two averaging rules on a hand-checked case, top-k / mean class
accuracy on hand-computed logits, views, the evaluation against the model scored by hand, the pipeline's
probabilities equal to the evaluation's, and the journey ``tvr eval --task zero-shot-classification`` -> ``tvr card``."""

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import tvr
from model_testers import tiny_config_options, tiny_text_config
from tvr.data.synthetic import labelled_classes, make_labelled_dataset
from tvr.evaluation.templates import TEMPLATE_SETS, resolve_templates
from tvr.evaluation.zero_shot import (
    class_logits,
    class_prompts,
    classification_metrics,
    evaluate_zero_shot,
    view_bounds,
)
from tvr.modeling.outputs import TextEncoding, VideoEncoding
from tvr.processing import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer

MAX_WORDS = 16
SCALE = 10.0


# ------------------------------------------------------------------------------------------------ templates
def test_template_sets_files_and_lists(tmp_path):
    assert resolve_templates() == ["a video of {}."] == resolve_templates("single")
    kinetics = resolve_templates("clip-kinetics")
    assert len(kinetics) == 28 and kinetics[:3] == ["a photo of {}.", "a photo of a person {}.",
                                                    "a photo of a person using {}."]
    assert kinetics[-1] == "a demonstration of a person practicing {}."
    ucf = resolve_templates("clip-ucf101")
    assert len(ucf) == 48 and ucf[:5] == ["a photo of a person {}.", "a video of a person {}.",
                                          "a example of a person {}.", "a demonstration of a person {}.",
                                          "a photo of the person {}."]
    assert len(TEMPLATE_SETS["internvideo"]) == 16 and TEMPLATE_SETS["internvideo"][7] == "{}"
    assert class_prompts(["red", "blue"], ["a {}", "{}!"]) == ["a red", "red!", "a blue", "blue!"]
    own = tmp_path / "templates.txt"
    own.write_text("# my prompts\na clip of {}\n\n{} in a video\n")
    assert resolve_templates(own) == ["a clip of {}", "{} in a video"]
    own.write_text("a clip of {}\na clip of\n")
    with pytest.raises(ValueError, match=r"templates.txt line 2: a template must contain '\{\}' exactly once"):
        resolve_templates(own)
    with pytest.raises(ValueError, match=r"templates 'clip-kinetic': neither a template set .*did you mean "
                                         r"'clip-kinetics'"):
        resolve_templates("clip-kinetic")
    with pytest.raises(ValueError, match="empty list"):
        resolve_templates([])


# -------------------------------------------------------------------------------------- averaging, metrics
class DotProductStandIn:
    """A model scoring ``SCALE * cos(text_features, video_embeds)``, with or without declaring it."""

    def __init__(self, declares: bool):
        self.scores_by_embedding_product = declares

    def score_gallery(self, text_encoding, video_encoding, **options):
        return SCALE * F.normalize(text_encoding.text_features, dim=-1) @ video_encoding.video_embeds.t()


def assert_logits(logits, expected):
    torch.testing.assert_close(logits, torch.tensor(expected), atol=1e-5, rtol=0)


def test_class_logits_ensemble_embeddings_or_average_logits():
    # class A's prompts point along x and y; class B's both along x. Videos: x, and (0.6, 0.8).
    prompts = TextEncoding(text_features=torch.tensor([[2.0, 0.0], [0.0, 5.0], [1.0, 0.0], [3.0, 0.0]]),
                           attention_mask=torch.ones(4, 3, dtype=torch.long))
    videos = VideoEncoding(video_embeds=torch.tensor([[1.0, 0.0], [0.6, 0.8]]))
    # CLIP's ensemble: A = normalise(mean((1, 0), (0, 1))) = (1, 1) / sqrt 2
    root_half = 1 / math.sqrt(2)
    ensembled = class_logits(DotProductStandIn(True), prompts, videos, num_templates=2)
    assert_logits(ensembled, [[SCALE * root_half, SCALE], [SCALE * 1.4 * root_half, SCALE * 0.6]])
    # per prompt: A's logit is the mean of cos = 1 and 0 (video x), 0.6 and 0.8 (video 2)
    averaged = class_logits(DotProductStandIn(False), prompts, videos, num_templates=2)
    assert_logits(averaged, [[SCALE * 0.5, SCALE], [SCALE * 0.7, SCALE * 0.6]])
    # one template: both rules are the model's own score
    single = TextEncoding(text_features=prompts.text_features[::2], attention_mask=prompts.attention_mask[::2])
    for declares in (True, False):
        assert_logits(class_logits(DotProductStandIn(declares), single, videos, 1),
                      [[SCALE * 1.0, SCALE], [SCALE * 0.6, SCALE * 0.6]])
    with pytest.raises(ValueError, match="4 prompts are not a whole number of classes x 3 templates"):
        class_logits(DotProductStandIn(True), prompts, videos, 3)


def test_top_k_and_mean_class_accuracy_hand_computed():
    logits = torch.tensor([[3.0, 1.0, 2.0],   # class 0: rank 0
                           [5.0, 4.0, 0.0],   # class 1: rank 1
                           [1.0, 1.0, 1.0],   # class 2: tied with both others, counted below them: rank 2
                           [2.0, 1.0, 0.0]])  # class 2: rank 2
    metrics, per_class = classification_metrics(logits, [0, 1, 2, 2], ["a", "b", "c"], top_k=(1, 2))
    assert metrics == pytest.approx({"top1": 25.0, "top2": 50.0, "mean_class_accuracy": 100 / 3})
    assert per_class == {"a": 100.0, "b": 0.0, "c": 0.0}
    metrics, _ = classification_metrics(logits, [0, 1, 2, 2], ["a", "b", "c"])
    assert metrics["top5"] == 100.0  # fewer than 5 classes
    with pytest.raises(ValueError, match=r"logits must be \(num_videos, num_classes\) = \(4, 2\)"):
        classification_metrics(logits, [0, 1, 0, 1], ["a", "b"])


def test_view_bounds():
    assert view_bounds([6.0, None], 3) == ([0.0, 2.0, 4.0, None, None, None], [2.0, 4.0, 6.0, None, None, None])
    assert view_bounds([6.0], 1) == ([None], [None])


# --------------------------------------------------------------------------------------- on a real tiny model
@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """``(dataset, processor, models)``: 6 labelled videos (5 colour classes; 4 s at 4 fps), a processor whose
    tokenizer knows the prompts, and tiny random CLIP4Clip models (meanP: ensembled; tightTransf: per prompt) saved
    with it."""
    root = tmp_path_factory.mktemp("labelled")
    dataset = make_labelled_dataset(root / "data", 6, label_by="color", size=32, fps=4, duration=4.0, progress=False)
    prompts = class_prompts(labelled_classes("color"), TEMPLATE_SETS["tvr-synthetic"]) + ["a video of red."]
    tokenizer = train_clip_tokenizer(prompts, root / "tokenizer", vocab_size=600)
    processor = TVRProcessor(TVRVideoProcessor(size=16, crop_size=16, max_frames=4, fps=2), tokenizer,
                             max_words=MAX_WORDS)
    text_config = tiny_text_config(vocab_size=len(tokenizer), max_position_embeddings=MAX_WORDS,
                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    models = {}
    for sim_header in ("meanP", "tightTransf"):
        torch.manual_seed(0)
        config = tvr.CLIP4ClipConfig(**tiny_config_options(text_config=text_config, max_words=MAX_WORDS,
                                                           sim_header=sim_header))
        model = tvr.CLIP4ClipModel(config).eval()
        folder = root / sim_header
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        models[sim_header] = (folder, model)
    return dataset, processor, models


def logits_by_hand(model, processor, paths, classes, templates, start=None, end=None):
    """``(num_videos, num_classes)``: the model's own encodings, CLIP's ensemble or the mean of prompt logits."""
    text = processor(text=class_prompts(classes, templates), return_tensors="pt")
    clip = {} if start is None else {"start": [start] * len(paths), "end": [end] * len(paths)}
    video = processor(videos=paths, return_tensors="pt", **clip)
    with torch.no_grad():
        text_encoding = model.encode_text(text["input_ids"], text["attention_mask"])
        video_encoding = model.encode_video(video["pixel_values_videos"], video["video_mask"])
        if model.scores_by_embedding_product:
            embeds = F.normalize(text_encoding.text_features, dim=-1).view(len(classes), len(templates), -1).mean(1)
            return model.clip.scale_logits(F.normalize(embeds, dim=-1) @ video_encoding.video_embeds.t()).t()
        logits = model.score_gallery(text_encoding, video_encoding)
        return logits.view(len(classes), len(templates), -1).mean(1).t()


@pytest.mark.parametrize("sim_header", ["meanP", "tightTransf"])
def test_evaluation_scores_as_the_model_does(labelled, sim_header):
    dataset, processor, models = labelled
    model = models[sim_header][1]
    assert model.scores_by_embedding_product == (sim_header == "meanP")
    classes, templates = labelled_classes("color"), TEMPLATE_SETS["tvr-synthetic"]
    paths = list(dataset["video_path"])
    result = evaluate_zero_shot(model, processor, dataset, templates="tvr-synthetic", batch_size=4, progress=False)
    assert result.classes == classes and result.templates == templates and result.labels == [0, 1, 2, 3, 4, 0]
    expected = logits_by_hand(model, processor, paths, classes, templates)
    torch.testing.assert_close(result.logits, expected, atol=1e-5, rtol=1e-5)
    metrics, per_class = classification_metrics(expected, dataset["label_id"], classes)
    assert result.metrics == pytest.approx(metrics) and result.per_class_accuracy == pytest.approx(per_class)
    # two views: the first and the second half of each 4-s video, logits averaged
    two_views = evaluate_zero_shot(model, processor, dataset, templates="tvr-synthetic", num_views=2, progress=False)
    halves = [logits_by_hand(model, processor, paths, classes, templates, start, end) for start, end in ((0, 2), (2, 4))]
    torch.testing.assert_close(two_views.logits, (halves[0] + halves[1]) / 2, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(two_views.logits, result.logits)


def test_missing_and_broken_videos_are_left_out_and_listed(labelled, tmp_path):
    dataset, processor, models = labelled
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    rows = dataset.to_dict()
    rows["video_path"][1], rows["video_path"][2] = "", str(broken)
    from datasets import Dataset

    damaged = Dataset.from_dict(rows, features=dataset.features)
    with pytest.warns(UserWarning, match="2 of 6 videos could not be decoded"):
        result = evaluate_zero_shot(models["meanP"][1], processor, damaged, progress=False)
    assert sorted(result.skipped_videos) == [rows["video_id"][1], rows["video_id"][2]]
    assert "no video file" in result.skipped_videos[rows["video_id"][1]]
    assert result.video_ids == [rows["video_id"][row] for row in (0, 3, 4, 5)] and result.labels == [0, 3, 4, 0]
    with pytest.raises(TypeError, match=r"unknown option 'num_view' \(did you mean 'num_views'\?\)"):
        evaluate_zero_shot(models["meanP"][1], processor, dataset, num_view=2)


@pytest.mark.parametrize("sim_header", ["meanP", "tightTransf"])
def test_pipeline_probabilities_equal_the_evaluation(labelled, sim_header):
    from transformers import pipeline

    dataset, processor, models = labelled
    folder, model = models[sim_header]
    classes = labelled_classes("color")
    result = evaluate_zero_shot(model, processor, dataset, templates="tvr-synthetic", progress=False)
    classifier = pipeline("zero-shot-video-classification", model=str(folder), device="cpu")
    answers = classifier(list(dataset["video_path"]), candidate_labels=classes, templates="tvr-synthetic")
    probabilities = torch.tensor([[next(a["score"] for a in answer if a["label"] == name) for name in classes]
                                  for answer in answers])
    torch.testing.assert_close(probabilities, result.logits.softmax(dim=-1), atol=1e-6, rtol=0)
    # one template: the pipeline's hypothesis_template is the single-template evaluation
    single = evaluate_zero_shot(model, processor, dataset, templates=["a video of {}."], progress=False)
    answer = classifier(dataset[0]["video_path"], candidate_labels=classes)
    assert [a["score"] for a in answer] == pytest.approx(sorted(single.logits[0].softmax(-1).tolist(), reverse=True),
                                                         abs=1e-6)
    with pytest.raises(ValueError, match="not both"):
        classifier(dataset[0]["video_path"], candidate_labels=classes, templates="single", hypothesis_template="{}")


def test_app_template_box_takes_a_set_or_one_template():
    from tvr.app.demo import label_templates

    assert label_templates("clip-kinetics") == TEMPLATE_SETS["clip-kinetics"]
    assert label_templates("a clip of {}") == ["a clip of {}"] and label_templates("") == ["{}"]
    with pytest.raises(ValueError, match="hypothesis_template must contain"):
        label_templates("a clip of")


# ------------------------------------------------------------------------------------------------- journey
def tvr_command(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tvr", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_journey_eval_zero_shot_then_card(labelled, tmp_path):
    """``tvr eval --task zero-shot-classification ... --output r.json`` then ``tvr card --eval-results r.json``: the
    card's model-index carries the zero-shot entry, with the numbers the evaluation computes in process."""
    from huggingface_hub import ModelCard

    dataset, processor, models = labelled
    folder, model = models["meanP"]
    annotations = folder.parent / "data" / "test.csv"  # the labelled set's own file (video_path,label)
    templates = tmp_path / "templates.txt"
    templates.write_text("a {} moves left\na {} appears\n")
    output = tmp_path / "r.json"
    done = tvr_command("eval", folder, "--task", "zero-shot-classification", "--dataset", "csv", "--annotations",
                       annotations, "--templates", templates, "--num-views", "2", "--device", "cpu", "--output",
                       output)
    assert done.returncode == 0, done.stderr
    results = json.loads(output.read_text())
    expected = evaluate_zero_shot(model, processor, dataset, templates=templates, num_views=2, progress=False)
    assert (results["task"], results["dataset"], results["split"]) == ("zero-shot-classification", "data/test.csv",
                                                                       "test")
    assert (results["templates"], results["num_views"], results["num_classes"], results["num_videos"]) == (
        ["a {} moves left", "a {} appears"], 2, 5, 6)
    assert {key: results[key] for key in expected.metrics} == pytest.approx(expected.metrics)
    assert results["per_class_accuracy"] == pytest.approx(expected.per_class_accuracy)
    assert f"top1 {expected.metrics['top1']:8.2f}".split() == done.stdout.split("\n")[1].split()

    done = tvr_command("card", folder, "--eval-results", output)
    assert done.returncode == 0, done.stderr
    card = ModelCard.load(folder / "README.md")
    entries = [(e.task_type, e.task_name, e.dataset_type, e.dataset_split, e.metric_type, e.metric_value)
               for e in card.data.eval_results]
    assert entries == [("zero-shot-video-classification", "Zero-Shot Video Classification", "data/test.csv", "test",
                        metric, round(results[key], 2))
                       for key, metric in (("top1", "top_1_accuracy"), ("top5", "top_5_accuracy"),
                                           ("mean_class_accuracy", "mean_class_accuracy"))]
    assert "| data/test.csv | test | 2 own | 2 | " in card.text and "Zero-shot video classification:" in card.text

    # a classification benchmark under the retrieval task, a retrieval option under zero-shot: errors naming both
    from tvr.cli import main

    with pytest.raises(ValueError, match=r"--dataset ucf101 is not a retrieval dataset .*pass the --task it is for"):
        main(["eval", str(folder), "--dataset", "ucf101", "--annotations", str(tmp_path)])
    with pytest.raises(ValueError, match="--dsl does not apply to --task zero-shot-classification"):
        main(["eval", str(folder), "--task", "zero-shot-classification", "--dataset", "csv", "--annotations",
              str(annotations), "--dsl"])


def test_ucf101_layout_through_the_cli_scores_as_the_csv(labelled, tmp_path):
    """The same videos and classes written as UCF-101's lists (classInd.txt order = the labelled set's) give the
    numbers of the labelled set's own CSV; ``--fold`` picks the list."""
    from tvr.cli import main

    dataset, processor, models = labelled
    folder, model = models["meanP"]
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    classes = labelled_classes("color")
    (lists / "classInd.txt").write_text("".join(f"{number} {name}\n" for number, name in enumerate(classes, 1)))
    (lists / "testlist02.txt").write_text("".join(f"{row['label']}/{row['video_path'].rsplit('/', 1)[1]}\n"
                                                  for row in dataset))
    output = tmp_path / "ucf.json"
    assert main(["eval", str(folder), "--task", "zero-shot-classification", "--dataset", "ucf101", "--annotations",
                 str(lists), "--videos", str(folder.parent / "data" / "videos"), "--fold", "2", "--templates",
                 "tvr-synthetic", "--device", "cpu", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    expected = evaluate_zero_shot(model, processor, dataset, templates="tvr-synthetic", progress=False)
    assert (results["dataset"], results["split"], results["fold"], results["templates"]) == ("ucf101", "test", 2,
                                                                                             "tvr-synthetic")
    assert {key: results[key] for key in expected.metrics} == pytest.approx(expected.metrics)


def test_card_shows_each_task_in_its_own_table():
    from tvr.hub_cards.card import build_model_card

    retrieval = {"dataset": "msrvtt", "split": "test", "t2v_R@1": 44.5, "v2t_R@1": 42.0}
    zero_shot = {"task": "zero-shot-classification", "dataset": "ucf101", "split": "test", "templates": "clip-ucf101",
                 "num_views": 3, "top1": 71.234, "top5": 93.0, "mean_class_accuracy": 70.5}
    alone = build_model_card({"model_type": "clip4clip"}, "me/model", eval_results=[retrieval])
    both = build_model_card({"model_type": "clip4clip"}, "me/model", eval_results=[zero_shot, retrieval])
    # the retrieval section is what it was, the zero-shot table follows it
    retrieval_section = alone.text[alone.text.index("## Evaluation"):].strip()
    assert both.text[both.text.index("## Evaluation"):].startswith(retrieval_section)
    assert "| UCF-101 | test | clip-ucf101 | 3 | 71.2 | 93.0 | 70.5 |" in both.text
    entries = [(e.task_type, e.dataset_name, e.metric_name, e.metric_value) for e in both.data.eval_results]
    assert entries == [("zero-shot-video-classification", "UCF-101", "top-1 accuracy", 71.23),
                       ("zero-shot-video-classification", "UCF-101", "top-5 accuracy", 93.0),
                       ("zero-shot-video-classification", "UCF-101", "mean class accuracy", 70.5),
                       ("text-to-video-retrieval", "MSR-VTT", "t2v R@1", 44.5),
                       ("video-to-text-retrieval", "MSR-VTT", "v2t R@1", 42.0)]
    with pytest.raises(ValueError, match=r"unknown task 'moment'"):
        build_model_card({"model_type": "clip4clip"}, "me/model", eval_results=[{**zero_shot, "task": "moment"}])
    with pytest.raises(ValueError, match=r"no metric keys like 'top1'"):
        build_model_card({"model_type": "clip4clip"}, "me/model",
                         eval_results=[{"task": "zero-shot-classification", "dataset": "ucf101"}])
