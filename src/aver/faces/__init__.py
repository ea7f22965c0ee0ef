"""Faces: detectors (mtcnn, retinaface behind one interface), tracking, alignment, store, plots.

`aver.faces.pipeline.run(params)` is the align stage; `aver.faces.store.FaceStore` reads its output.
`DETECTORS` registers each face detector once with the config class of the settings it owns
(`align.detector` accepts exactly its names; AlignConfig is composed of those classes); this
package stays light on import (aver.config reads it), each detector loads when it is built.
"""

from __future__ import annotations

from aver.faces.mtcnn_config import MtcnnOptions
from aver.faces.retinaface_config import RetinaFaceOptions
from aver.schema import Section

# align.detector name -> (the align settings it owns, "module:function(cfg: AlignConfig,
# device: str) -> Detector"); the one list of detectors. AlignConfig derives from every options
# class here (aver.config; a test checks), so the settings stay flat under `align`.
DETECTORS: dict[str, tuple[type[Section], str]] = {
    "mtcnn": (MtcnnOptions, "aver.faces.mtcnn:from_config"),
    "retinaface": (RetinaFaceOptions, "aver.faces.retinaface:from_config"),
}

__all__ = ["DETECTORS"]
