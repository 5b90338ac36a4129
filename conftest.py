"""opscheck's plugins are named in pytest.ini (`-p opscheck.options -p opscheck.plugin`), not
here: a conftest's pytest_plugins are refused when it is loaded after start-up, as it is when the
`opscheck` command runs the checks from another folder."""
