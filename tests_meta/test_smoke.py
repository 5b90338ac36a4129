def test_default_inventory_runs(suite):
    result = suite.run('[[host]]\nname = "me"\nuri = "local://"\n', "", "-m", "morning")
    assert result.ret in (0, 1)
    assert suite.results()["test_host_reachable[me]"]["outcome"] == "passed"


def test_disk_crit_fails(suite):
    result = suite.run('[[host]]\nname = "me"\n', '[host.disk_used_pct]\nwarn = "0.5%"\ncrit = "1%"\n',
                       "-k", "disk")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*me: / * % used * > crit 1.0 %*"])
