"""mnist-edge export: fp32 and int8 TFLite and ONNX from one Keras model and one calibration set."""
