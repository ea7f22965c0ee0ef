"""The output-settings rule: every config field changes a stage's output unless marked."""

from __future__ import annotations

from typing import Annotated

import pytest

from aver.config import AlignConfig, CacheConfig, ExtractConfig, Section, TrainConfig
from aver.output_settings import NOT_OUTPUT, output_fields, output_settings

# The hand-kept lists these markers replaced (media OUTPUT_SETTINGS, faces RESULT_FIELDS,
# features FEATURE_KEYS, training _NOT_FINGERPRINTED): the derived sets must equal them.
EXTRACT = ("fps", "max_side", "sample_rate", "crf", "preset", "min_duration_s")
ALIGN = (
    "detector", "retinaface_weights", "retinaface_url", "sample_fps", "detect_every",
    "detect_side", "min_face", "size", "smoothing", "min_detection_rate",
    "keep_fps", "max_skip", "still_tolerance", "track_min_face",  # issue 20/21: sparse detection
)  # fmt: skip
CACHE = (
    "audio_encoder", "audio_layers", "face_encoder", "n_mels", "n_mfcc", "win_ms", "hop_ms",
    "video_fps", "face_size", "window_s", "crop",
    "hop_s", "max_clip_s",  # issue 21: whole clips as windows
)  # fmt: skip
TRAIN_NOT_FINGERPRINTED = {
    "out", "folds", "model_fold", "use_tuned", "tuned_params", "num_workers", "device",
    "preset", "compile", "executor", "workers", "use_gpu", "select",
}  # fmt: skip


@pytest.mark.parametrize(
    ("section", "expected"),
    [(ExtractConfig, EXTRACT), (AlignConfig, ALIGN), (CacheConfig, CACHE)],
)
def test_stage_output_fields_are_the_former_lists(section, expected):
    # as sets: stamps compare as mappings, and AlignConfig's detector options come first
    assert sorted(output_fields(section)) == sorted(expected)


def test_train_fingerprint_fields_are_the_former_complement():
    assert set(output_fields(TrainConfig)) == set(TrainConfig.model_fields) - (
        TRAIN_NOT_FINGERPRINTED
    )


def test_output_settings_values_and_nested_sections():
    cfg = ExtractConfig(fps=10.0, workers=7)
    assert output_settings(cfg) == {
        "fps": 10.0, "max_side": 320, "sample_rate": 16000, "crf": 20, "preset": "veryfast",
        "min_duration_s": 0.5,
    }  # fmt: skip
    train = output_settings(TrainConfig(), mode="json")
    assert train["model"] == TrainConfig().model.model_dump(mode="json")
    assert "out" not in train


def test_a_new_field_is_an_output_setting_by_default():
    class NewSection(Section):
        out: Annotated[str, NOT_OUTPUT] = "x"
        workers: Annotated[int, NOT_OUTPUT] = 1
        brand_new: float = 1.0

    assert output_fields(NewSection) == ("brand_new",)
    assert output_settings(NewSection(out="y", workers=3)) == {"brand_new": 1.0}
