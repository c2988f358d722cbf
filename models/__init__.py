"""loan-stream: models. The default-risk model, from history to a registered, served champion.

inputs, columns   raw CreditFields columns -> checked numpy arrays + one error message per bad row
features          application-time features (one `build()` for training and scoring), leakage guard
data, prepare     training sources (Lending Club CSV, Parquet lake, synthetic), temporal split
nets, baselines   the PyTorch wide & deep ensemble; logistic regression and gradient boosting baselines
search, fit       Optuna searches (nested MLflow runs) and fitting on CPU or CUDA
metrics, report   AUC, PR-AUC, KS, Brier, ECE, the validation-tuned threshold; figures and the HTML report
scoring, pyfunc   the Scorer (raw fields -> probability, decision, error) and the MLflow pyfunc around it
train, registry   one training run -> registered `candidate`; resolve / load_scorer / promote to `champion`
cli               loans-train, loans-promote
"""
