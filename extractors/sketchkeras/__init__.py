"""sketchKeras (lllyasviel, 2017) in PyTorch: the network is rebuilt from the Keras file's own model_config.

- `keras_graph`: a PyTorch module that runs a Keras functional graph described by its config;
- `keras_file`: reading (and, for tests and benchmarks, writing) Keras HDF5 model files with h5py;
- `weights`: `pipe weights convert sketchkeras mod.h5 OUT` and loading the converted file;
- `extract`: sketchKeras's exact preprocessing and post-processing around the network.
"""
