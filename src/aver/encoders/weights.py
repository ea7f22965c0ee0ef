"""Where a pretrained encoder's weights file comes from (torch-free until called).

In order: `cache.encoder_weights` (a file, when it can only mean one encoder, or a directory
holding `<library file name>`); the caches the libraries download into (`torch.hub.get_dir()/
checkpoints` for torchaudio and torchvision, `$TORCH_HOME/checkpoints` for facenet-pytorch, both
under `$TORCH_HOME`); else a one-time download from `cache.encoder_urls[name]` or the library's
URL into the torch hub cache (`aver.io.weights.fetch_once`: verified against
`cache.encoder_sha256[name]`, else pinned on first use). `AVER_OFFLINE=1` forbids the download.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aver.encoders.specs import AUDIO_ENCODERS, FACE_ENCODERS
from aver.errors import ConfigError
from aver.io.weights import ResolvedWeights, checked_file, fetch_once

SCRIPTED = "torchscript"  # the face encoder given by path only


def torch_home() -> Path:
    """`$TORCH_HOME`, as torch and facenet-pytorch compute it."""
    default = os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", default)))


def hub_checkpoints() -> Path:
    """torch hub's weights cache (torchaudio and torchvision download there)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def pretrained_names(cfg: Any) -> list[str]:
    """The pretrained encoders `cfg` (a CacheConfig) configures: audio first, then face."""
    names = [cfg.audio_encoder] if cfg.pretrained_audio else []
    return names + ([cfg.face_encoder] if cfg.pretrained_face else [])


def _source(name: str) -> tuple[str | None, str | None]:
    """The library file name and default URL of encoder `name`."""
    if name in AUDIO_ENCODERS:
        spec = AUDIO_ENCODERS[name]
        return spec.filename, spec.url
    if name in FACE_ENCODERS:
        face = FACE_ENCODERS[name]
        return face.filename, face.url
    raise ConfigError(f"unknown encoder {name!r}", fix="use a name in aver.encoders")


def _fix(name: str, filename: str, url: str | None, dest: Path, folder: str | None) -> str:
    got = f" (from {url})" if url else ""
    there = f" or in {folder} (cache.encoder_weights)" if folder else ""
    return (
        f"put {filename}{got} at {dest}{there} (torch's cache; $TORCH_HOME moves it), or set "
        f"cache.encoder_weights to that file or to a directory holding it; "
        f"cache.encoder_sha256.{name} gives the sha256 it must have, cache.encoder_urls.{name} "
        "another URL to download it from"
    )


def resolve_encoder_weights(
    name: str, cfg: Any, transfer: dict[str, Any] | None = None
) -> ResolvedWeights:
    """The weights file of encoder `name` under `cfg` (a CacheConfig), its sha256 and source.

    `transfer`: keyword arguments of the download (`DownloadConfig.transfer_kwargs()`). Raises
    ConfigError / DataError / DownloadError naming the file, the URL and where to put it.
    """
    filename, default_url = _source(name)
    sha = cfg.encoder_sha256.get(name)
    url = cfg.encoder_urls.get(name, default_url)
    local = _configured(name, cfg, filename)
    if local is not None:
        fix = f"point cache.encoder_weights at the {name} weights file, or correct or remove "
        fix += f"cache.encoder_sha256.{name}"
        return checked_file(local, sha256=sha, what=f"{name} weights", fix=fix)
    if filename is None:  # torchscript given as a directory
        raise ConfigError(
            f"face_encoder {name} needs cache.encoder_weights to be the TorchScript file itself",
            path=cfg.encoder_weights,
            fix="set cache.encoder_weights to the path of the .pt file (torch.jit.save)",
        )
    dest = hub_checkpoints() / filename
    given = Path(cfg.encoder_weights).expanduser() if cfg.encoder_weights else None
    fix = _fix(name, filename, url, dest, str(given) if given and given.is_dir() else None)
    facenet_cache = torch_home() / "checkpoints" / filename
    if not dest.is_file() and facenet_cache.is_file():
        return checked_file(facenet_cache, sha256=sha, what=f"{name} weights", fix=fix,
                            source="cache")  # fmt: skip
    if url is None:
        raise ConfigError(f"no weights and no URL for encoder {name}", path=dest, fix=fix)
    return fetch_once(url, dest, sha256=sha, what=f"{name} weights ({filename})", fix=fix,
                      **(transfer or {}))  # fmt: skip


def _configured(name: str, cfg: Any, filename: str | None) -> Path | None:
    """The file `cache.encoder_weights` gives for `name`, if it gives one."""
    if not cfg.encoder_weights:
        return None
    given = Path(cfg.encoder_weights).expanduser()
    if given.is_dir():
        inside = given / filename if filename else None
        return inside if inside is not None and inside.is_file() else None
    if not given.is_file():
        raise ConfigError(
            "cache.encoder_weights: no such file or directory",
            path=given,
            fix="correct cache.encoder_weights (a weights file, or a directory holding each "
            "encoder's file under its library name), or set it to null to use torch's cache",
        )
    names = pretrained_names(cfg)
    if name == SCRIPTED or names == [name]:
        return given
    if SCRIPTED in names:
        return None  # the file is the TorchScript face model; this encoder uses the caches
    raise ConfigError(
        f"cache.encoder_weights is one file but {' and '.join(names)} are both pretrained "
        "encoders: which one it holds is ambiguous",
        path=given,
        fix="make cache.encoder_weights a directory holding each encoder's file under its "
        f"library name ({', '.join(str(_source(n)[0]) for n in names)})",
    )
