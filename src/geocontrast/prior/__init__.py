"""The presence-only geographic prior P(species | location[, date]): its location encoding and network
(:mod:`.location`), fit and parameters (:mod:`.model`), scores and the combination with an image classifier
(:mod:`.scores`), and the workflow's geo_prior stage (:mod:`.fit`).

Files (``R = results/<dataset>``): ``R/replicates/<rep>/geoprior/l<pct>/probs.npy``: (N, C) float32 presence
probabilities of every manifest row, trained on the labelled subset of that budget; class order = sorted species
names of the manifest; rows without coordinates hold 1.0 (a uniform prior). ``prior.json`` beside it: ``classes``
and the prior's own val/test accuracy (and, on the synthetic world, its oracle limits); ``grid.npz``: the prior on
a lat/lon grid, for range maps.
"""
