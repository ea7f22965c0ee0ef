"""MODEL_CARD.md: every section is there and every number is the one it was rendered from."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from aver.config import TrackingConfig, parse_params
from aver.datasets import DATASETS
from aver.datasets.scope import SCOPES
from aver.model_card import ModelCard, card_from_params
from aver.tracking import card_doc, registry, runs
from aver.tracking.card_doc import CardInputs, render, split_counts

CLASSES = ["angry", "happy", "sad"]
SECTIONS = (
    "# Model card: aver-demo version 7",
    "## Model",
    "## Data and protocol",
    "## Class balance",
    "## Metrics",
    "### Validation",
    "### Test",
    "## What the model was never shown",
    "## Intended use",
    "## Uses to avoid",
)


def _index() -> pd.DataFrame:
    """Fold 0: speakers a, b train; c val; d test (uneven class counts)."""
    rows = []
    for speaker, split, labels in (
        ("a", "train", ["angry", "angry", "happy", "sad"]),
        ("b", "train", ["angry", "happy", "happy"]),
        ("c", "val", ["sad", "angry"]),
        ("d", "test", ["happy", "happy", "happy"]),
    ):
        rows += [{"clip_id": f"{speaker}{i}", "label": lab, "speaker": speaker,
                  "split_0": split} for i, lab in enumerate(labels)]  # fmt: skip
    return pd.DataFrame(rows)


def _card(dataset: str = "ravdess", leaky: bool = False) -> ModelCard:
    params = parse_params(
        {
            "cache": {"face_size": 32},
            "train": {
                "model": {"name": "msan", "d_model": 16, "heads": 2, "layers": 1},
                "modality_dropout": 0.3,
            },
        },
        "test",
    )
    run = {
        "fold": 0,
        "seed": 3,
        "best_epoch": 5,
        "val_uar": 0.612345,
        "val_accuracy": 0.654321,
        "val_macro_f1": 0.598765,
        "dataset": dataset,
        "protocol": "random" if leaky else "speaker_kfold",
        "leaky": leaky,
        "n_folds": 4,
        "splits": split_counts(_index(), 0, CLASSES),
        "mlflow_run_id": "run123",
    }
    return card_from_params(
        params, classes=CLASSES, dims={"audio_dim": 64, "face_size": 32}, run=run
    )


TEST_DOC = {
    "n_runs": 2,
    "uar": 0.5512,
    "accuracy": 0.6023,
    "macro_f1": 0.5301,
    "per_fold": {
        "0": {"uar": 0.5111, "accuracy": 0.5822, "macro_f1": 0.4933, "n_test": 30},
        "1": {"uar": 0.5913, "accuracy": 0.6224, "macro_f1": 0.5669, "n_test": 28},
    },
    "intervals": {
        "uar": {"bootstrap": [0.4412, 0.6634], "runs": [0.1234, 0.9876]},
        "accuracy": {"bootstrap": [0.5011, 0.7012], "runs": None},
        "macro_f1": {"bootstrap": [0.4222, 0.6433], "runs": [0.2001, 0.8602]},
    },
}


def test_split_counts_per_split_and_class():
    counts = split_counts(_index(), 0, CLASSES)
    assert counts["train"] == {"clips": 7, "speakers": 2,
                               "classes": {"angry": 3, "happy": 3, "sad": 1}}  # fmt: skip
    assert counts["val"]["classes"] == {"angry": 1, "happy": 0, "sad": 1}
    assert counts["test"] == {"clips": 3, "speakers": 1, "speaker_ids": ["d"],
                              "classes": {"angry": 0, "happy": 3, "sad": 0}}  # fmt: skip


def test_split_counts_name_the_test_speakers_and_their_attribute():
    index = _index()
    index["sex"] = index["speaker"].map({"a": "male", "b": "Female", "c": "", "d": "male"})
    counts = split_counts(index, 0, CLASSES, attribute="sex")
    assert counts["train"]["groups"] == {"female": 1, "male": 1}
    assert counts["val"]["groups"] == {"unknown": 1}
    assert counts["test"]["speaker_ids"] == ["d"] and counts["test"]["groups"] == {"male": 1}


def test_card_names_each_folds_test_speakers():
    card = _card()
    card.run["splits"]["test"].update(attribute="sex", groups={"male": 1})
    doc = {**TEST_DOC, "per_fold": {k: {**v, "test_speakers": [f"s{k}", "t"]}
                                    for k, v in TEST_DOC["per_fold"].items()}}  # fmt: skip
    text = render(CardInputs(card, "aver-demo", "7", test=doc))
    assert "- Test speakers (fold 0): d (sex: male 1)" in text
    assert "| fold | UAR | WA | macro-F1 | test clips | test speakers |" in text
    assert "| 0 | 0.511 | 0.582 | 0.493 | 30 | s0, t |" in text
    assert "| 1 | 0.591 | 0.622 | 0.567 | 28 | s1, t |" in text


def test_render_has_every_section_and_the_inputs_numbers():
    val_runs = [
        {"fold": 0, "seed": 3, "val_uar": 0.612345, "val_accuracy": 0.654321,
         "val_macro_f1": 0.598765},
        {"fold": 1, "seed": 3, "val_uar": 0.7, "val_accuracy": 0.71, "val_macro_f1": 0.69},
    ]  # fmt: skip
    text = render(CardInputs(_card(), "aver-demo", "7", val_runs=val_runs, test=TEST_DOC))
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    # architecture and input from the machine card
    assert "`msan`" in text and "d_model=16" in text and "angry, happy, sad" in text
    assert "modality dropout 0.3" in text and "run123" in text
    # data and protocol, split sizes
    assert "`ravdess`, real recordings" in text and "speaker-independent" in text
    assert "| train | 7 | 2 |" in text and "| val | 2 | 1 |" in text and "| test | 3 | 1 |" in text
    # class balance: class | train | val | test
    assert "| angry | 3 | 1 | 0 |" in text and "| happy | 3 | 0 | 3 |" in text
    assert "| sad | 1 | 1 | 0 |" in text
    # validation per run, test per fold, means and both intervals
    for row in (
        "| 0 | 3 | 0.612 | 0.654 | 0.599 |",
        "| 1 | 3 | 0.700 | 0.710 | 0.690 |",
        "| 0 | 0.511 | 0.582 | 0.493 | 30 |",
        "| 1 | 0.591 | 0.622 | 0.567 | 28 |",
        "UAR 0.551, bootstrap over test clips [0.441, 0.663], Student t across runs [0.123, 0.988]",
    ):
        assert row in text
    assert "WA 0.602, bootstrap over test clips [0.501, 0.701]\n" in text
    assert "reported once" in text and "optimistic" in text
    # never shown, intended use and uses to avoid
    never = text.split("## What the model was never shown")[1].split("##")[0]
    assert all(x in never for x in SCOPES["ravdess"].never_shown)
    assert "acted emotional speech" in text.split("## Intended use")[1]
    avoid = text.split("## Uses to avoid")[1]
    assert "across cultures" in avoid and "decisions about individuals" in avoid
    assert "surveillance" in avoid


def test_no_number_is_typed_into_the_text():
    """Every decimal in the card comes from the inputs: rendering other inputs changes them."""
    text = render(CardInputs(_card(), "m", "1", test=TEST_DOC))
    shown = set(re.findall(r"\d\.\d{3}", text))
    expected = {f"{v:.3f}" for v in (0.612345, 0.654321, 0.598765)}
    for m in ("uar", "accuracy", "macro_f1"):
        expected.add(f"{TEST_DOC[m]:.3f}")
        expected |= {f"{x:.3f}" for x in TEST_DOC["intervals"][m]["bootstrap"]}
        expected |= {f"{x:.3f}" for x in TEST_DOC["intervals"][m]["runs"] or []}
        expected |= {f"{f[m]:.3f}" for f in TEST_DOC["per_fold"].values()}
    assert shown == expected


def test_before_evaluation_and_for_a_model_file():
    text = render(CardInputs(_card()))
    assert text.startswith("# Model card: msan (model file)")
    assert "Not evaluated yet" in text
    assert "| 0 | 3 | 0.612 | 0.654 | 0.599 |" in text  # the card's own validation record


def test_synthetic_and_leaky_data_are_said():
    text = render(CardInputs(_card("demo", leaky=True)))
    assert "`demo`, synthetic (generated)" in text
    assert "synthetic demo data only" in text
    assert "LEAKY" in text and "unseen speakers" in text


def test_an_old_card_without_the_data_record_still_renders():
    card = _card()
    old = card.model_copy(update={"run": {"fold": 1, "val_uar": 0.5}})
    text = render(CardInputs(old))
    assert "not recorded in this model file" in text
    assert "## Uses to avoid" in text


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_says_what_it_holds(name):
    assert set(SCOPES) == set(DATASETS)
    scope = SCOPES[name]
    assert scope.about and scope.speech and scope.never_shown
    assert scope.synthetic == (name == "demo")


def test_description_is_cut_to_what_the_store_keeps(embedded_store, tmp_path):
    runs.use_store(runs.connect(runs.absolute_uri(runs.tracking_uri(TrackingConfig()))))
    client = runs.client()
    client.create_registered_model("card-cut")
    mv = client.create_model_version("card-cut", source=str(tmp_path))
    registry.describe("card-cut", mv.version, "x" * (registry.DESCRIPTION_MAX + 10))
    text = client.get_model_version("card-cut", mv.version).description
    assert len(text) == registry.DESCRIPTION_MAX and card_doc.FILE in text
    assert registry.model_card_text("models:/card-cut/1") == text  # no run: the description
