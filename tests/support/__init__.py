"""Test support: what only the tests need around the emulated pool.

- `tests.support.faults`: `Faults` and `FaultyPool`, an `EmulatedPool` that
  also injects latency, errors and dropped connections and serves ``/__stats``.
- `tests.support.endpoint`: ``python -m tests.support.endpoint serve``, the
  ``serve`` command with fault flags, for tests that need a pool in a process
  of its own.
- `tests.support.served`: starts and stops that process.
- `tests.support.fake_cognito`: a loopback server that answers every request
  with a canned reply, for tests of errors the emulated pool never makes.
- `tests.support.moto_keys`: one import of moto's signing key for all pools;
  switched on here, so by any test that uses this package.
"""

from tests.support.moto_keys import share_moto_signing_key

share_moto_signing_key()
