"""Test set-up for end-to-end tests: the library tests' (see jaxseg/conftest.py)."""

# pylint: disable-next=unused-import
from jaxseg.conftest import configure_test_environment, pytest_configure

configure_test_environment()
