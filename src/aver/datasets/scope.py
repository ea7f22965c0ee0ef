"""What each dataset holds and what a model trained on it never saw: the human model card's
data section (aver.tracking.card_doc). One entry per name in aver.datasets.DATASETS (a test
checks); kept apart from the dataset modules so the card reads no dataset code or settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """What a dataset holds and what a model trained on it never saw (the human model card)."""

    about: str  # who and what is recorded, in one sentence
    speech: str  # the kind of expression, e.g. "acted emotional speech"
    never_shown: tuple[str, ...]  # conditions absent from the data
    synthetic: bool = False  # generated, no real person


SCOPES: dict[str, Scope] = {
    "demo": Scope(
        about="aver's synthetic demo data: generated voices (tones with prosody) and rendered "
        "cartoon faces, no real person",
        speech="synthetic demo data only",
        never_shown=(
            "any real person, voice or face: synthetic demo data only; the model says nothing "
            "about real emotions",
        ),
        synthetic=True,
    ),
    "ravdess": Scope(
        about="RAVDESS: 24 professional North-American actors (12 female, 12 male) saying two "
        "neutral English sentences with acted emotions, frontal faces, studio recordings",
        speech="acted emotional speech",
        never_shown=(
            "spontaneous (non-acted) emotional speech and expressions",
            "languages other than English and accents other than North-American",
            "other cultures, children and older adults (the actors are young adults)",
            "non-frontal faces, occlusion, poor lighting, noisy rooms, phone microphones",
            "conversations between several people",
        ),
    ),
    "cremad": Scope(
        about="CREMA-D: 91 actors (48 male, 43 female, ages 20-74, several ethnicities) saying "
        "12 English sentences with acted emotions, frontal faces, studio recordings",
        speech="acted emotional speech",
        never_shown=(
            "spontaneous (non-acted) emotional speech and expressions",
            "languages other than English, cultures outside the United States",
            "children",
            "non-frontal faces, occlusion, poor lighting, noisy rooms, phone microphones",
            "conversations between several people",
        ),
    ),
    "mosei": Scope(
        about="CMU-MOSEI: English YouTube opinion monologues, one speaker facing the camera, "
        "labelled by the dominant crowd-rated emotion",
        speech="spontaneous English monologues to a camera",
        never_shown=(
            "languages other than English",
            "conversations between several people, children",
            "settings other than a person talking to their own camera (calls, meetings, "
            "surveillance footage)",
            "speaker-independence holds per video only: a speaker in several videos may be in "
            "train and test",
        ),
    ),
    "folder": Scope(
        about="clips you supplied (the folder dataset's index)",
        speech="the expressions in your clips",
        never_shown=(
            "anything your folder does not hold: check its speakers, languages, ages, "
            "recording conditions and whether the emotions are acted or spontaneous",
        ),
    ),
}
