"""Build-time acceleration: ONNX export and checks, TensorRT engine plans and builds."""
