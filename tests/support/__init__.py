"""Test support: what only the tests need around the emulated pool.

- `tests.support.fake_cognito`: a loopback server that answers every request
  with a canned reply, for tests of errors the emulated pool never makes.
"""
