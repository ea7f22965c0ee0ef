"""Named training presets: `train.preset` -> the train keys it sets, as published.

A plain table: aver.config validates `train.preset` against it, aver.resolution applies it
(over params.yaml, under tuned values and overrides; see there for the precedence). To change
one of a preset's keys, copy the preset's values into params.yaml and drop the preset.
"""

from __future__ import annotations

from typing import Any

# Keys are relative to `train` (dotted for the nested model section).
PRESETS: dict[str, dict[str, Any]] = {
    # AVT-CA paper (Venkatraman et al.), as published. Sec. IV: "trained for 128 epochs",
    # "batch size was set to 8, and the Adam optimizer was used with a learning rate of 0.01 and
    # a weight decay of 0.001"; Sec. III-D: cross-entropy on the fused prediction only. No
    # schedule, warm-up, clipping, smoothing, augmentation or early stopping is reported, so none
    # is used, and the model kept is the last epoch's (no checkpoint selection is described).
    # The face stem convolution has stride 1 as in Sec. III-A2.
    # Remaining deviations (this preset cannot remove them; see README "Presets"):
    #  - inputs: the paper gives audio only as A in R^{T x C} and faces as T x H x W x 3, with no
    #    feature type, window, frame rate or face size; we use the cache's log-mel (n_mels 64,
    #    25/10 ms), 5 fps 64 x 64 faces over a 2 s window (cache.*), as for the other models;
    #  - widths: d_model, conv channels, patches, layers and dropout are not given; ours are the
    #    model defaults (train.model.*), the heads follow the variant (full: 4 IT, 4 CT);
    #  - data and protocol: the paper reports one 80/20 train/validation split (Table I) of
    #    RAVDESS, CMU-MOSEI and CREMA-D and does not say whether speakers are disjoint; we train
    #    on data.dataset with cache.protocol (speaker k-fold by default, demo data by default);
    #  - seed, initialisation and Adam betas/eps are not given: torch defaults, train.seed.
    # (ctm_weight is unused by avtca; the paper has no CTM loss either.)
    "avtca_paper": {
        "optimizer": "adam",
        "lr": 0.01,
        "weight_decay": 0.001,
        "batch_size": 8,
        "epochs": 128,
        "schedule": "none",
        "warmup_epochs": 0,
        "label_smoothing": 0.0,
        "grad_clip": None,
        "early_stop_patience": None,
        "select": "last",
        "augment": False,
        "model.name": "avtca",
        "model.variant": "full",
        "model.video_stride": 1,
        "model.unimodal_weight": 0.0,  # the per-stream classifiers are ours, not the paper's
    },
    # The head for frozen pretrained encoders (README "Pretrained encoders"): the encoders'
    # features are already good, so a small MSAN over projected embeddings, a lower learning
    # rate and early stopping on validation UAR, as in the SUPERB/EmoBox downstream recipes
    # (frozen upstream, learned layer weights, small head). Pair it with cache.audio_encoder
    # and cache.face_encoder (cache settings are not train keys, so a preset cannot set them).
    "pretrained_msan": {
        "optimizer": "adamw",
        "lr": 5e-4,
        "weight_decay": 1e-2,
        "batch_size": 32,
        "epochs": 40,
        "schedule": "cosine",
        "warmup_epochs": 2,
        "early_stop_patience": 10,
        "model.name": "msan",
        "model.d_model": 128,
        "model.audio_channels": 128,  # the projection widths of the embedding front-ends
        "model.video_channels": 128,
    },
    # A minute on a laptop CPU: a small MSAN for smoke runs and the demo dataset.
    "demo_fast": {
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 1e-2,
        "batch_size": 8,
        "epochs": 4,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "early_stop_patience": None,
        "model.name": "msan",
        "model.d_model": 32,
        "model.heads": 2,
        "model.layers": 1,
    },
}
