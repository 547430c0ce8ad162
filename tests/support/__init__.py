"""What the tests share beside the fixtures in conftest.py: configs, direct database access,
lifecycle source rows, awkward comparison data."""
