"""Training-ready exports of an output folder: the published SpatialVID-HQ layout and WebDataset shards."""
