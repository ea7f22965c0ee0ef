"""Every model and variant, and every model on every input kind: build, forward/backward,
gradients, padding invariance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from aver.errors import ConfigError
from aver.models import (
    MODEL_CONFIGS,
    MODELS,
    InputDims,
    ModelConfig,
    ModelOutput,
    build_model,
    model_config,
)
from aver.training.loop import total_loss

from .conftest import (
    AUDIO_DIM,
    CASES,
    CROPS,
    EMBED_DIM,
    FACE,
    INPUTS,
    N_CLASSES,
    SMALL,
    clip_of,
    make_batch,
    small_cfg,
)

FUSION = ("avtca", "msan", "late_fusion")


def build(cfg: ModelConfig, dims: InputDims = CROPS) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(cfg, n_classes=N_CLASSES, **dims.kwargs())


def test_registry_names_match_config_choices():
    assert set(MODELS) == set(MODEL_CONFIGS)
    for name, (cls, _) in MODEL_CONFIGS.items():
        assert cls().name == name  # each config class is keyed by its own name


def check_forward_backward(cfg: ModelConfig, dims: InputDims) -> torch.nn.Module:
    """Logits of the right shape; the training loss's gradient reaches every parameter."""
    model = build(cfg, dims).train()
    batch = make_batch([40, 27, 33], [4, 3, 2], seed=1, dims=dims)
    out = model(batch)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, N_CLASSES)
    assert set(out.aux_losses) == ({"ctm"} if cfg.name == "msan" and cfg.ctm_weight else set())
    # late fusion's branches are its two models; avtca/msan grow heads only when weighted
    heads = cfg.name == "late_fusion" or (cfg.name in FUSION and cfg.unimodal_weight > 0)
    assert set(out.branch_logits) == ({"audio", "video"} if heads else set())
    total_loss(out, batch["label"]).backward()  # the training loss, branch terms included
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero, f"zero gradient at {zero}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    return model


def check_padded_clip_matches_clip_alone(cfg: ModelConfig, dims: InputDims) -> None:
    model = build(cfg, dims).eval()
    # clip 0 padded by 13 audio / 2 video frames
    batch = make_batch([27, 40], [3, 5], seed=2, dims=dims)
    with torch.no_grad():
        together = model(batch).logits
        for i in range(2):
            alone = model(clip_of(batch, i)).logits
            torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=0)


def check_padding_content_is_ignored(cfg: ModelConfig, dims: InputDims) -> None:
    model = build(cfg, dims).eval()
    with torch.no_grad():
        a = model(make_batch([31, 40], [2, 4], seed=3, pad_value=0.0, dims=dims)).logits
        b = model(make_batch([31, 40], [2, 4], seed=3, pad_value=1e3, dims=dims)).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_forward_backward_reaches_every_parameter(case):
    check_forward_backward(case[1], CROPS)


def test_padded_clip_matches_clip_alone(case):
    check_padded_clip_matches_clip_alone(case[1], CROPS)


def test_padding_content_is_ignored(case):
    check_padding_content_is_ignored(case[1], CROPS)


def test_every_input_kind_trains_every_parameter(model_inputs):
    """Features or encoder layers, crops or embeddings: the front-end follows the dims, and
    the gradient reaches every parameter, the layer weights included."""
    cfg, dims = model_inputs
    model = check_forward_backward(cfg, dims)
    names = {n for n, _ in model.named_parameters()}
    uses = {"audio": cfg.name != "video_only", "video": cfg.name != "audio_only"}
    assert any(n.endswith("layer_logits") for n in names) == (
        uses["audio"] and dims.audio_embeddings
    )
    face_cnn = any(".frame." in f".{n}" for n in names)
    assert face_cnn == (uses["video"] and not dims.video_embeddings)


def test_every_input_kind_padded_clip_matches_clip_alone(model_inputs):
    check_padded_clip_matches_clip_alone(*model_inputs)


def test_every_input_kind_ignores_padding_content(model_inputs):
    check_padding_content_is_ignored(*model_inputs)


@pytest.mark.parametrize("kind", list(INPUTS))
def test_clip_without_any_real_video_frame_stays_finite(kind):
    batch = make_batch([30, 40], [0, 3], seed=4, dims=INPUTS[kind])
    for name in ("avtca", "msan", "late_fusion"):
        out = build(small_cfg(name=name), INPUTS[kind]).eval()(batch)
        assert torch.isfinite(out.logits).all(), name


def test_late_fusion_averages_the_unimodal_logits():
    model = build(small_cfg(name="late_fusion")).eval()
    batch = make_batch([30, 40], [2, 3], seed=5)
    with torch.no_grad():
        expected = (model.audio(batch).logits + model.video(batch).logits) / 2
        torch.testing.assert_close(model(batch).logits, expected)


@pytest.mark.parametrize("name", FUSION)
def test_unimodal_weight_adds_each_branch_cross_entropy(name):
    batch = make_batch([30, 40, 35], [2, 3, 4], seed=7)
    plain = build(small_cfg(name=name, ctm_weight=0.0)).eval()
    assert not hasattr(plain, "branches") or plain.branches is None
    model = build(small_cfg(name=name, ctm_weight=0.0, unimodal_weight=0.7)).eval()
    with torch.no_grad():
        out = model(batch)
        labels = batch["label"]
        branch = [F.cross_entropy(out.branch_logits[m], labels) for m in ("audio", "video")]
        expected = F.cross_entropy(out.logits, labels) + 0.7 * (branch[0] + branch[1])
        torch.testing.assert_close(total_loss(out, labels), expected)
        assert float(total_loss(out, labels)) > float(F.cross_entropy(out.logits, labels))


@pytest.mark.parametrize("name", FUSION)
def test_branch_classifiers_see_only_their_own_modality(name):
    """The audio head ignores the faces and the video head the sound (they sit before fusion)."""
    model = build(small_cfg(name=name, unimodal_weight=1.0)).eval()
    batch = make_batch([30, 40], [2, 3], seed=8)
    other = make_batch([30, 40], [2, 3], seed=9)
    new_faces = {**batch, "video": other["video"]}
    new_sound = {**batch, "audio": other["audio"]}
    with torch.no_grad():
        base, faces, sound = model(batch), model(new_faces), model(new_sound)
    torch.testing.assert_close(faces.branch_logits["audio"], base.branch_logits["audio"])
    torch.testing.assert_close(sound.branch_logits["video"], base.branch_logits["video"])
    assert not torch.allclose(faces.branch_logits["video"], base.branch_logits["video"])
    assert not torch.allclose(sound.branch_logits["audio"], base.branch_logits["audio"])
    assert not torch.allclose(faces.logits, base.logits)  # the fused output sees both


@pytest.mark.parametrize(
    ("variant", "it_heads", "ct_heads"),
    [("it1", 1, None), ("it4", 4, None), ("ct1", None, 1), ("ct4", None, 4), ("full", 4, 4)],
)
def test_avtca_variants_follow_table_v(variant, it_heads, ct_heads):
    model = build(small_cfg(name="avtca", variant=variant, layers=2))
    assert len(model.it) == (2 if it_heads else 0)
    if it_heads:
        assert model.it[0].cross_a.attn.heads == it_heads
    assert (model.ct is None) == (ct_heads is None)
    if ct_heads:
        assert model.ct.av.heads == ct_heads


def test_msan_without_ctm_has_no_ctm_head():
    assert build(small_cfg(name="msan", ctm_weight=0.0)).core.ctm is None
    assert build(small_cfg(name="msan", ctm_weight=0.1)).core.ctm is not None


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "msan", "d_model": 18, "heads": 4},  # 18 % 4 != 0
        {"name": "avtca", "d_model": 18, "variant": "full"},  # avtca needs 4 | d_model
        {"name": "msan", "d_model": 12, "heads": 4, "position": "tarope"},  # odd head width 3
    ],
)
def test_bad_shapes_raise_config_error(overrides):
    with pytest.raises(ValidationError, match=r"train\.model\.d_model"):  # params validation
        small_cfg(**overrides)
    cls = MODEL_CONFIGS[overrides["name"]][0]
    fields = {k: v for k, v in {**SMALL, **overrides}.items() if k in cls.model_fields}
    unchecked = cls.model_construct(**{**cls().model_dump(), **fields})
    with pytest.raises(ConfigError):  # and the models, for a config that skipped it
        build(unchecked)


def test_too_small_faces_raise_config_error():
    with pytest.raises(ConfigError, match="face_size"):
        build_model(small_cfg(video_stride=4), n_classes=3, audio_dim=AUDIO_DIM, face_size=8)


def test_face_size_check_applies_to_crops_only():
    """Face embeddings have no face size: the stride/patches check does not apply."""
    cfg = small_cfg(video_stride=4, video_patches=4)
    model = build_model(cfg, n_classes=3, audio_dim=AUDIO_DIM, face_size=0, video_dim=EMBED_DIM)
    out = model.eval()(make_batch([20], [3], dims=InputDims(AUDIO_DIM, video_dim=EMBED_DIM)))
    assert out.logits.shape == (1, 3)


@pytest.mark.parametrize(
    "dims",
    [
        {"audio_dim": AUDIO_DIM, "face_size": 0},  # neither crops nor embeddings
        {"audio_dim": AUDIO_DIM, "face_size": FACE, "video_dim": EMBED_DIM},  # both
        {"audio_dim": 0, "face_size": FACE},
    ],
)
def test_inconsistent_input_dims_raise_config_error(dims):
    with pytest.raises(ConfigError, match="input dims"):
        build_model(small_cfg(), n_classes=3, **dims)


def test_model_refuses_inputs_of_another_encoder():
    """A model built for one encoder's layers names the mismatch on another's arrays."""
    model = build(small_cfg(name="msan"), INPUTS["layers+embeddings"]).eval()
    batch = make_batch([20], [3], dims=INPUTS["layers+embeddings"])
    with pytest.raises(ValueError, match="another audio encoder"):
        model({**batch, "audio": batch["audio"][:, :, :2]})  # 2 layers where it has 3
    with pytest.raises(ValueError, match="another face encoder"):
        model({**batch, "video": batch["video"][..., :4]})


def test_default_config_runs_at_the_cache_defaults():
    """The default ModelConfig on 64-px faces, 64 log-mels, 2 s (200 audio / 10 video frames)."""
    torch.manual_seed(0)
    b = 2
    batch = {
        "audio": torch.randn(b, 200, 64),
        "audio_mask": torch.ones(b, 200, dtype=torch.bool),
        "audio_times": ((torch.arange(200) + 0.5) / 100).expand(b, -1),
        "video": torch.randn(b, 10, 3, 64, 64),
        "video_mask": torch.ones(b, 10, dtype=torch.bool),
        "video_times": ((torch.arange(10) + 0.5) / 5).expand(b, -1),
    }
    for name in ("avtca", "msan"):
        model = build_model(model_config(name=name), n_classes=6, audio_dim=64, face_size=64)
        out = model(batch)
        assert out.logits.shape == (b, 6)
        assert all(torch.isfinite(v) for v in out.aux_losses.values())


@pytest.mark.parametrize("name", ["avtca", "msan"])
def test_runs_under_bf16_autocast_and_deterministic_mode(name):
    batch = make_batch([40, 27], [4, 0], seed=6)
    model = build(small_cfg(name=name, ctm_weight=0.5))
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch)
            loss = F.cross_entropy(out.logits.float(), batch["label"])
            loss = loss + sum(out.aux_losses.values())
        loss.backward()
    finally:
        torch.use_deterministic_algorithms(was)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_every_registered_model_builds_from_its_default_config(name):
    """One registration: the config class validates and the builder builds (small inputs)."""
    cfg = model_config(**{**SMALL, "name": name})
    assert isinstance(cfg, MODEL_CONFIGS[name][0])
    out = build(cfg).eval()(make_batch([30, 40], [2, 3], seed=10))
    assert out.logits.shape == (2, N_CLASSES)


def test_model_config_drops_other_models_keys_and_refuses_typos():
    cfg = model_config(name="avtca", ctm_weight=0.5, position="none")
    assert cfg.name == "avtca" and not hasattr(cfg, "ctm_weight")
    with pytest.raises(ValueError, match=r"train\.model\.d_modl: unknown key.*d_model"):
        model_config(name="msan", d_modl=32)


@pytest.mark.parametrize("kind", list(INPUTS))
def test_loader_batches_of_cached_arrays_fit_the_models_built_from_their_shapes(kind):
    """Per-clip arrays as the cache stores them (float16 layers / embeddings, uint8 crops),
    normalised and batched by the loader, run every model built from `InputDims.from_shapes`."""
    import numpy as np

    from aver.features import batch_from_arrays
    from aver.features.stats import FoldStats

    want = INPUTS[kind]
    rng = np.random.default_rng(0)
    a_frame = (want.audio_layers, want.audio_dim) if want.audio_embeddings else (want.audio_dim,)
    crops = (want.face_size, want.face_size, 3)
    v_frame = (want.video_dim,) if want.video_embeddings else crops
    ta, tv = 40, 4
    clips = [
        {
            "audio": rng.normal(size=(ta, *a_frame)).astype(np.float16),
            "audio_mask": np.arange(ta) < n_a,
            "audio_times": ((np.arange(ta) + 0.5) / 50).astype(np.float32),
            "video": (
                rng.normal(size=(tv, *v_frame)).astype(np.float16)
                if want.video_embeddings
                else rng.integers(0, 256, size=(tv, *v_frame), dtype=np.uint8)
            ),
            "video_mask": np.arange(tv) < n_v,
            "video_times": ((np.arange(tv) + 0.5) / 5).astype(np.float32),
        }
        for n_a, n_v in ((40, 4), (25, 2))
    ]
    dims = InputDims.from_shapes(clips[0]["audio"].shape, clips[0]["video"].shape)
    assert dims == want
    v_stat = v_frame[-1:] if want.video_embeddings else (3,)
    stats = FoldStats(
        np.zeros(a_frame, np.float32), np.ones(a_frame, np.float32),
        np.full(v_stat, 0.5, np.float32), np.full(v_stat, 0.25, np.float32), 2,
    )  # fmt: skip
    batch = batch_from_arrays(clips, stats, labels=[0, 1])
    for name in MODEL_CONFIGS:
        out = build(small_cfg(name=name), dims).eval()(batch)
        assert out.logits.shape == (2, N_CLASSES) and torch.isfinite(out.logits).all(), name


FUSION_CASES = [c for c in CASES if c[1]["name"] in FUSION]


def _missing_batch(dims: InputDims, seed: int = 11) -> dict[str, torch.Tensor]:
    """Clip 0 without audio, clip 1 without video (masks all False, arrays zero as the loader
    makes them), clip 2 with both."""
    batch = make_batch([0, 40, 33], [4, 0, 3], seed=seed, dims=dims)
    batch["audio"][0] = 0.0
    batch["video"][1] = 0.0
    return batch


@pytest.mark.parametrize(("cid", "overrides"), FUSION_CASES, ids=[c[0] for c in FUSION_CASES])
@pytest.mark.parametrize("kind", list(INPUTS))
def test_a_clip_without_one_modality_gives_finite_logits_loss_and_gradients(cid, overrides, kind):
    dims = INPUTS[kind]
    model = build(small_cfg(**overrides), dims).train()
    batch = _missing_batch(dims)
    out = model(batch)
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(v).all() for v in out.aux_losses.values())
    assert all(torch.isfinite(v).all() for v in out.branch_logits.values())
    loss = total_loss(out, batch["label"], label_smoothing=0.1)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", FUSION)
def test_an_absent_modalitys_arrays_do_not_matter(name):
    """A clip without audio scores the same whatever its (masked) audio arrays hold."""
    model = build(small_cfg(name=name, unimodal_weight=0.5)).eval()
    batch = _missing_batch(CROPS)
    noisy = {**batch, "audio": batch["audio"].clone(), "video": batch["video"].clone()}
    noisy["audio"][0] = torch.randn_like(noisy["audio"][0])
    noisy["video"][1] = torch.randn_like(noisy["video"][1])
    with torch.no_grad():
        torch.testing.assert_close(model(batch).logits[:2], model(noisy).logits[:2])


def test_late_fusion_scores_a_one_modality_clip_from_that_modality():
    model = build(small_cfg(name="late_fusion")).eval()
    batch = _missing_batch(CROPS)
    with torch.no_grad():
        out = model(batch)
        audio, video = model.audio(batch).logits, model.video(batch).logits
    torch.testing.assert_close(out.logits[0], video[0])
    torch.testing.assert_close(out.logits[1], audio[1])
    torch.testing.assert_close(out.logits[2], (audio[2] + video[2]) / 2)


@pytest.mark.parametrize("name", FUSION)
def test_branch_loss_skips_clips_without_that_modality(name):
    model = build(small_cfg(name=name, ctm_weight=0.0, unimodal_weight=0.7)).eval()
    batch = _missing_batch(CROPS)
    labels = batch["label"]
    with torch.no_grad():
        out = model(batch)
        audio = F.cross_entropy(out.branch_logits["audio"][1:], labels[1:])
        video = F.cross_entropy(out.branch_logits["video"][[0, 2]], labels[[0, 2]])
        expected = F.cross_entropy(out.logits, labels) + 0.7 * (audio + video)
        torch.testing.assert_close(total_loss(out, labels), expected)
