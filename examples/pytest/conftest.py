# Loads the graphsec fixtures (graphsec_fixture.py, next to this file) for every test here.
pytest_plugins = ["graphsec_fixture"]
