"""Clip scores for filtering, from one decode of each clip.

- ``base``: the ``Scorer`` interface, ``SampledFrames`` and ``FrameSink``;
- ``frames``: the one-pass decoder (every luma plane to the sinks, a few RGB frames kept);
- ``luminance``: Rec.709 luma mean/min/max on the sampled frames;
- ``vmaf_motion``: libvmaf 3's ``integer_motion2``, exact, over every frame;
- ``flow``: mean DIS optical-flow magnitude on sampled consecutive pairs;
- ``ocr``: PP-OCRv4 text detection (``TextDetector`` client) and the text-area ratio;
- ``brisque``: OpenCV's BRISQUE, the default quality score without weights;
- ``aesthetic`` / ``clip_vit`` / ``aesthetic_files``: the LAION aesthetic MLP on CLIP ViT-L/14;
- ``rules``: the filter thresholds; ``suite``: all scorers over one clip.

The stages are ``services/stages/score.py`` and ``services/stages/filter.py``.
"""
