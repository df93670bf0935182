"""The component's Proxy and Tlsroots parameters (issue 15), in the TD fake.

The proxy and TLS behaviour itself is tested natively (tests/proxy.rs); here:
the parameters exist as documented, reach the library's config, and a proxy the
library cannot use is a clear error on the node that never shows its password."""

import json

from conftest import KEY, run_until
from test_component import component, connect  # noqa: F401 - the fixture is used by name


def native_config(comp):
    """The config JSON the shim gave the library for this component."""
    shim = comp.op("DataNet").module
    return json.loads(shim.DataNet(comp.path)._state["config"])


def test_proxy_and_tls_roots_parameters_reach_the_library(td, component):  # noqa: F811
    comp = component
    assert comp.par.Tlsroots.menuNames == ["both", "os", "webpki"]
    assert (comp.par.Tlsroots.eval(), comp.par.Proxy.eval()) == ("both", "")
    connect(td, comp)
    config = native_config(comp)
    assert config["tls_roots"] == "both"
    assert "proxy" not in config, "an empty Proxy leaves the choice to the environment variables"

    comp.par.Tlsroots = "webpki"
    comp.par.Proxy = "direct"
    run_until(td, lambda: native_config(comp).get("proxy") == "direct", what="reconnected with the new settings")
    assert native_config(comp)["tls_roots"] == "webpki"
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="connected with Proxy direct")


def test_an_unusable_proxy_is_a_clear_error_without_its_password(td, component):  # noqa: F811
    comp = component
    comp.par.Proxy = "socks5://venue:S3cretPr0xyPw@proxy.corp:1080"
    comp.par.Apikey = KEY
    comp.par.Connect.pulse()
    run_until(td, lambda: "SOCKS" in comp.scriptErrors(), what="the error on the node")
    shown = comp.scriptErrors() + comp.par.Status.eval()
    assert "proxy" in shown and "S3cretPr0xyPw" not in shown, shown
