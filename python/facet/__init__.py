"""facet: face detection, landmarks, alignment and head pose on the CPU.

Images are NumPy uint8 arrays of shape (H, W, 3) in RGB order (Pillow's ``numpy.asarray(img)``);
OpenCV's BGR arrays are accepted with ``bgr=True``. A C-contiguous RGB array is read in place,
without a copy. Inference releases the GIL: use one detector per thread (``clone()``).

    import facet, numpy
    detector = facet.RetinaFace("weights/retinaface_mnet025_official.facet")
    for face in detector.detect(numpy.asarray(PIL.Image.open("photo.jpg").convert("RGB"))):
        print(face.score, face.box, face.landmarks)

Errors from facet (a missing model, a corrupt image) raise ``facet.Error``, a RuntimeError.
"""
from ._facet import (Error, Face, FaceAttributes, FaceLandmarker, FaceRecognizer, GraphExecutor, GraphModel, HeadPose,
                     MeshDecoder, Mtcnn, RetinaFace, Y4mReader, __version__, align_face, estimate_head_pose, faces_array,
                     isa, load_image)

__all__ = ["Error", "Face", "FaceAttributes", "FaceLandmarker", "FaceRecognizer", "GraphExecutor", "GraphModel", "HeadPose",
           "MeshDecoder", "Mtcnn", "RetinaFace", "Y4mReader", "__version__", "align_face", "estimate_head_pose", "faces_array",
           "isa", "load_image"]
