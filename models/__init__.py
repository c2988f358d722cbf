"""loan-stream: models. The default-risk model, from history to a registered, served champion, its
folders in the order of its life:

features     application fields -> checked inputs (inputs, columns), expressions run in numpy and
             Spark alike (expr), the features learnt on the training rows (spec: fit_spec, build)
training     data and the temporal split (data: sources, split, prepare), the PyTorch wide & deep
             ensemble and the baselines (nets, baselines), Optuna search and fitting on CPU or CUDA
             (search, fit), the HTML report (report), one training run -> `candidate` (train)
scoring      the Scorer (raw fields -> probability, decision, error, reasons: scorer, explain), its
             ONNX network (network), the MLflow pyfunc around it (pyfunc, pyfunc_model)
registry     reaching MLflow (tracking); resolve / load / promote to `champion` (versions)
monitoring   drift and accuracy per window and version (monitor)
metrics      AUC, PR-AUC, KS, Brier, ECE, the validation-tuned threshold (training and monitoring)
cli          loans-train, loans-promote, loans-retrain
"""
