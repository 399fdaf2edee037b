"""What runs inside the Triton Python stub: request checks, image codec, the two services, TensorRT at run time."""
