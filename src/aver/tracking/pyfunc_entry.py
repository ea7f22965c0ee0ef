"""MLflow models-from-code entry: executed when the logged aver model is loaded."""

from mlflow.models import set_model

from aver.tracking.pyfunc import AverPyfunc

set_model(AverPyfunc())
