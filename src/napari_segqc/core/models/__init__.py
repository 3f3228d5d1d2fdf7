"""Models: the networks, their weights files and the models shipped in the package.

* :mod:`.registry`: architectures and encoders (segmentation-models-pytorch) behind one factory;
* :mod:`.weights`: safe weights and state files (safetensors + JSON, never pickles);
* :mod:`.builtin`: the built-in models and how a model source resolves to a file;
* :mod:`.normalize`: how every model sees an image (percentile normalisation).
"""
