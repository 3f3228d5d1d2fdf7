"""Scale out: zarr / OME-Zarr in and out, and prediction on dask clusters.

* :mod:`.zarr_io`: zarr and OME-Zarr images (their full-resolution level) read lazily, or one
  window at a time;
* :mod:`.label_writer`: OME-Zarr label stores written chunk by chunk, with a pyramid, atomically;
* :mod:`.blocks`: the block plan (cores and halos), matching objects across block borders and
  stitching ids (union-find: globally unique, consecutive);
* :mod:`.window`: one block's work on a worker (read its window, segment it with the whole
  image's normalisation and scale, write its core);
* :mod:`.images`: one whole image read, segmented and written (in this process or on a worker);
* :mod:`.models`: the models a process or worker keeps (each loaded once);
* :mod:`.cluster`: the dask client (``--scheduler`` / ``--workers``), the models kept once per
  worker, dask-jobqueue clusters (SLURM, LSF, ...);
* :mod:`.predict`: a folder image by image and big images block by block on a cluster;
* :mod:`.settings`: the run's settings, as workers get them.

The engine is dask.distributed (as Cellpose's and CellSAM's distributed segmentation use it):
no scheduler of our own.
"""
