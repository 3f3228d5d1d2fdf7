"""Training: U-Nets (and other segmentation-models-pytorch networks) from image/label pairs.

* :mod:`.config`: :class:`~.config.TrainConfig`, everything a run (and its model file) needs;
* :mod:`.data`: samples from layers or folders, the train/validation split, random patches;
* :mod:`.augment`: batched augmentation on the device;
* :mod:`.losses`, :mod:`.optim`: losses, optimizers, schedules, early stopping;
* :mod:`.loop`: the training loop (a generator) and its run folder, with resume;
* :mod:`.validation`: the validation scores after every epoch.

The targets the network learns are :mod:`napari_segqc.core.instances.targets`.
"""
