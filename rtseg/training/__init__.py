"""Making models: training (from pretrained starts or scratch), export to ONNX with a manifest entry,
INT8 and TensorRT builds behind accuracy gates, and importing models users bring. Needs PyTorch."""
