"""Faces: detectors (mtcnn, retinaface behind one interface), tracking, alignment, store, plots.

`aver.faces.pipeline.run(params)` is the align stage; `aver.faces.store.FaceStore` reads its output.
`DETECTORS` registers each face detector once (`align.detector` accepts exactly its names); this
package stays light on import (aver.config reads it), each detector loads when it is built.
"""

from __future__ import annotations

# align.detector name -> "module:function(cfg: AlignConfig, device: str) -> Detector".
DETECTORS: dict[str, str] = {
    "mtcnn": "aver.faces.mtcnn:from_config",
    "retinaface": "aver.faces.retinaface:from_config",
}

__all__ = ["DETECTORS"]
