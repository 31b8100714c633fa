r"""``invkit tune``: choose a recipe's numbers for a task and NFE budget on training images.

A budgeted search (issue 13): sample configurations of SSD's t0, DA inversion η, generation η,
inversion/generation split and spacing at an exact network-call budget (:class:`SearchSpace`),
rank them by successive halving on Fashion-MNIST *training* images (:func:`successive_halving`;
:func:`load_training_images` refuses test data), journal every trial (resumable), and write the
winner as a named preset (``ssd-10-tuned``) that ``invkit eval`` runs. With a FID cap
(``fid_cap="ddnm-30"``) only configurations whose fid_fashion is no worse than a reference
recipe's on the same images compete on the objective.

- :mod:`.data` — the training-only image loader and its guard;
- :mod:`.space` — the search space; :mod:`.halving` — successive halving;
- :mod:`.run` — :class:`TuneConfig`, :func:`tune`, the journal, the presets file.
"""

from __future__ import annotations

from .data import TRAINING_DATASET, TestDataError, check_training_dataset, load_training_images
from .halving import rung_plan, successive_halving
from .run import FID_CAP_MIN_IMAGES, JOURNAL, OBJECTIVES, OVER_CAP, REFERENCE_TRIAL, RESULT, TuneConfig, preset_entry, tune, write_presets
from .space import SPACINGS, SearchSpace, method_string, paper_config

__all__ = [
    "TRAINING_DATASET",
    "TestDataError",
    "check_training_dataset",
    "load_training_images",
    "rung_plan",
    "successive_halving",
    "FID_CAP_MIN_IMAGES",
    "JOURNAL",
    "OBJECTIVES",
    "OVER_CAP",
    "REFERENCE_TRIAL",
    "RESULT",
    "TuneConfig",
    "tune",
    "preset_entry",
    "write_presets",
    "SPACINGS",
    "SearchSpace",
    "method_string",
    "paper_config",
]
