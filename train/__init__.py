"""mnist-edge training: MNIST data, the model definitions and `mnist-edge train`."""
