"""features -> decisions: value segmentation, arrears model, calibration, grades, explanations.

Pure functions and scikit-learn style estimators; no paths, no YAML, no MLflow here.
"""
