"""opscheck: the plugin loads the inventory and thresholds; the fixtures hand out targets."""

pytest_plugins = [
    "opscheck.plugin",
    "fixtures.host",
    "fixtures.http",
    "fixtures.postgres",
    "fixtures.redis",
    "fixtures.sqlite",
    "fixtures.logs",
    "fixtures.backup",
]
