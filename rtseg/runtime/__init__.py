"""The live path of a frame: sources, preprocess, the model slot, postprocess, sinks, and the threaded
pipeline that joins them. Imports nothing from training or evaluation, so the runtime install
(numpy, OpenCV, ONNX Runtime) runs it."""
