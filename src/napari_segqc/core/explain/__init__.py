"""Explanation: what the network looks at and why training went where it did.

* :mod:`.attribution`: attribution maps (Captum: integrated gradients, gradient × input,
  saliency, occlusion) of an output channel summed over a rectangle or an object, tile by tile;
* :mod:`.filters`: convolution kernels with their Fourier spectra, and feature maps;
* :mod:`.landscape`: loss surfaces around the trained weights (Li et al. 2018) and the 1-D
  path from the initial weights;
* :mod:`.plots`: the matplotlib figures of landscapes and LR range tests.

The LR range test lives with training (:mod:`napari_segqc.core.train.lr_find`).
"""
