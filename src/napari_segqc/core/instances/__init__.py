"""Instance labels and the network's maps, both ways.

* :mod:`.targets`: the target channels a network learns, made from instance labels (encoding);
* :mod:`.decoding`: the network's maps decoded back into instance labels.

Training and prediction both import this; it imports neither.
"""
