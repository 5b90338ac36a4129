"""opscheck: the inventory and thresholds are loaded by the plugin; the fixtures hand out targets."""

pytest_plugins = ["opscheck.plugin", "fixtures.host", "fixtures.http"]
