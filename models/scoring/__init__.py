"""A trained version at work: the scorer (raw fields -> probability, decision, reasons), its ONNX
network, the reasons (explain) and the MLflow pyfunc around it."""
