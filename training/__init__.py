"""Plain Keras/TensorFlow training pipeline for lesionsite.

Nothing in this package imports Django. Modules that the web process uses
(``classes``, ``card``, ``preprocessing``) import neither TensorFlow nor Keras;
everything that needs TensorFlow imports it at module level in its own module.
"""
