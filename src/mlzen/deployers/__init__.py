"""Model deployers: serve a model version as an HTTP prediction service.

``deployments.py`` deploys, lists and stops services with the stack's model deployer
(the ``local`` one, ``local.py``, runs each as a background process on this machine);
``serving.py`` is the FastAPI app such a process runs, over ``schema.py`` (the input a
model takes and its validation) and ``predictor.py`` (calling the model); ``step.py``
is the ``deploy_model`` step. Only ``serving.py`` imports FastAPI, and only the service
process imports it.
"""
