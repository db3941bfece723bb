"""features -> decisions: value segmentation, arrears model, calibration, grades, explanations.

Pure functions and scikit-learn style estimators; no YAML and no MLflow here. The only
paths are a fitted model's own files (``ArrearsModel.save``/``load``, ``Segmenter.load``,
``plots.save``): the folder a stage hands them, never a path of their own choosing.
"""
