"""What tests read off the gateway's web page in Chromium (JavaScript expressions for
:meth:`tests.support.browser.Page.wait_for`), shared by the page tests and the tests of
the production gateway's login (tests/integration/test_web_page.py, test_web_security.py)."""

#: The text of the live value of voltage L1 ("" while the row is not there yet).
VOLTAGE = """(document.querySelector('#values tr[data-obis="1-0:32.7.0"] .value') || {}).textContent"""
#: A number as the page writes a live value (two decimals).
NUMBER = r"/^-?\d+\.\d\d$/"
