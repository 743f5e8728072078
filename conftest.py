# Lets `python -m pytest` import the package from a checkout before `pip install -e .`.
