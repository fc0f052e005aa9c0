"""See a dataset: a browser viewer (``spatialvid view``) and a statistics report (``spatialvid report``)."""
