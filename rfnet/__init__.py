"""RFNet, the multi-modal inspector of "Towards Reliable Advertising Image Generation Using
Human Feedback" (ECCV 2024), with its data format, extractors, training and evaluation.

Start with :mod:`rfnet.model` (the network), :mod:`rfnet.dataformat` (the RF dataset format) and
:mod:`rfnet.inspect` (verdicts on images). Importing this package loads nothing heavy.
"""

__version__ = "0.1.0"
