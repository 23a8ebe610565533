"""pytest plugin: a run with a skipped test fails. Every test has its data in the repository
(tests/data), so a skip can only hide a test that did not run; tests/conftest.py loads this."""


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0:
        reporter.write_line(f"FAILED: {skipped} test(s) skipped; every test must run", red=True)
        session.exitstatus = 1
