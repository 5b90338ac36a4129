"""Probes: a target's connection (and its settings) in, ``Measurement``s out.

Each probe is a plain function ``probe(connection, *settings) -> Measurement | list[Measurement]``
whose inputs are the test's connection fixture, its target (or a ``for_each`` entry of it) and
values derived from them: nothing a test computes. A yes/no answer is a ``Measurement.fact``. A
probe never asserts, knows no threshold and calls no pytest function: it raises ``ProbeError``
when it cannot measure and ``NotApplicable`` when the target has nothing to measure, so that it
can run anywhere (in the test, or ahead of it).
"""


class NotApplicable(Exception):
    """The target has nothing this check measures (no replica, AOF off, a single backup): the
    test skips, with this reason. Not a failure, unlike ``ProbeError``."""
