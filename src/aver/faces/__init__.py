"""Faces: detectors (mtcnn, retinaface behind one interface), tracking, alignment, store, plots.

`aver.faces.pipeline.run(params)` is the align stage; `aver.faces.store.FaceStore` reads its output.
"""
