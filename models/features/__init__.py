"""Application fields in, model inputs out: checked fields (inputs, columns), the expressions
run in numpy and Spark alike (expr), and the features learnt on the training rows (spec)."""
