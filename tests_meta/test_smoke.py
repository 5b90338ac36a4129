def test_default_inventory_runs(suite):
    result = suite.run('[[host]]\nname = "me"\nuri = "local://"\n', "", "-m", "morning")
    assert result.ret in (0, 1)
    assert suite.results()["test_host_reachable[me]"]["outcome"] == "passed"
