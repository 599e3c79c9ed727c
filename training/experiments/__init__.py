"""Training options that were tried and not shipped, kept because docs/MODEL_CARD.md
quotes their results.

``python -m training.experiments`` takes every option of ``python -m training.train``
and these, each off by default, so that with none of them it trains exactly what
``training.train`` does (``ExperimentRecipe`` in ``training.experiments.recipe``):

- ``--sampling sqrt|balanced``: class-resampled batches, each class drawn as often as
  the square root of its size, or equally often; the loss weights complete the balance.
- ``--label-smoothing``: in fine-tuning.
- ``--color-augmentation``: brightness and per-channel contrast on top of the geometry.
- ``--train-batch-norm``: train the fine-tuned blocks' batch-norm, after giving the
  folded layers real statistics.
- ``--pull-to-start``: pull the fine-tuned weights back towards ImageNet's after every
  step (a decoupled L2-SP).
- ``--background-cutout`` / ``--cutout-margin-px``: with ``--framing``, replace a share of
  the pictures' surroundings beyond the lesion mask and a margin by a smooth skin field.
- ``--malignant-group-loss``: add a malignant-versus-benign cross-entropy on the summed
  probabilities of the malignant classes to the fine-tuning loss.

None of them beat the shipped recipe on validation (docs/MODEL_CARD.md, "What did not
help", and "After v5" for the background cut-out and the malignant-group loss); an option
that does moves into ``training.train.Recipe``.
"""
