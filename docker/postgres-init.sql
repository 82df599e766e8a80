-- MLflow keeps its tracking store in its own database next to homeloop's.
CREATE DATABASE mlflow OWNER homeloop;
