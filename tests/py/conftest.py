"""Fixtures for the Python tests: a real gateway process, the native library, a
fresh DataNet runtime per test, and the TouchDesigner fake."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)

RELEASE = os.path.join(REPO, "target", "release")
SCRIPT_CHOP_READINGS = ["kept", "cleared"]
# README, "Set up in TouchDesigner": the Execute DAT's toggles an artist turns on.
EXECUTE_TOGGLES = ("start", "create", "framestart", "exit")
KEY = "ak_python_tests"


def library_path():
    import DataNet
    stem, suffix = DataNet.library_file_parts()
    return os.path.join(RELEASE, stem + suffix)


def gateway_exe():
    return os.path.join(RELEASE, "datanet-gateway" + (".exe" if sys.platform.startswith("win") else ""))


@pytest.fixture(scope="session", autouse=True)
def native_build():
    """tests/run.sh builds the release library and gateway before pytest; build
    them here too when pytest runs alone."""
    if not (os.path.isfile(library_path()) and os.path.isfile(gateway_exe())):
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)


class Gateway:
    """A datanet-gateway process with the admin API on; ``args`` are more flags
    (``--record``, ``--replay``, ``--upstream-*``), ``env`` its environment."""

    def __init__(self, log_path, args=(), env=None, port=0):
        self.log_path = log_path
        self.log_file = open(log_path, "w")
        self.process = subprocess.Popen([gateway_exe(), "--port", str(port), "--admin", *args],
                                        stdout=subprocess.PIPE, stderr=self.log_file, text=True, env=env)
        line = self.process.stdout.readline()
        self.url = line.strip().rsplit(" ", 1)[-1]
        assert self.url.startswith("http://"), "unexpected gateway banner: %r" % line
        self.ws_url = "ws://" + self.url[len("http://"):]

    def admin(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + "/_admin/" + path, data=data,
                                         headers={"Content-Type": "application/json"},
                                         method="GET" if body is None else "POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def stats(self):
        return self.admin("stats")

    def log(self):
        with open(self.log_path, encoding="utf-8") as f:
            return f.read()

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.log_file.close()


@pytest.fixture
def gateway(tmp_path):
    gw = Gateway(str(tmp_path / "gateway.log"))
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Each test starts with no DataNet instances (the library stays loaded, as it
    would in TD), and leaves none running."""
    yield
    runtime = sys.modules.get("_datanet_td_runtime")
    if runtime is None:
        return
    for state in runtime.instances.values():
        if state["handle"] is not None:
            state["lib"].dn_client_free(state["handle"])
    runtime.instances.clear()


@pytest.fixture
def lib_env(monkeypatch, gateway):
    """The environment the README's Execute DAT reads."""
    monkeypatch.setenv("DATANET_LIB", library_path())
    monkeypatch.setenv("DATANET_API_KEY", KEY)
    monkeypatch.setenv("DATANET_API_URL", gateway.url)
    monkeypatch.setenv("DATANET_WS_URL", gateway.ws_url)
    return gateway


@pytest.fixture
def td(request, tmp_path):
    """The TD fake. Whether a Script CHOP keeps its channels between cooks is not
    documented: tests of CHOP output run under both readings with
    @pytest.mark.parametrize("td", SCRIPT_CHOP_READINGS, indirect=True)."""
    from tdfake import TD

    fake = TD(project_folder=str(tmp_path), project_name="tests",
              script_chop_channels=getattr(request, "param", "kept"))
    yield fake
    assert fake.thread_violations == 0
    assert not fake.errors, "user callbacks raised: %s" % fake.errors


def read(relative):
    with open(os.path.join(REPO, relative), encoding="utf-8") as f:
        return f.read()


def build_readme_network(td, channels="project.demo.sensor", with_callbacks=False):
    """The network the README tells an artist to build, with the repo's files
    pasted verbatim."""
    os.environ["DATANET_CHANNELS"] = channels
    root = td.root
    root.create("textDAT", "DataNet").text = read("DataNet.py")
    root.create("tableDAT", "messages")
    chop = root.create("scriptCHOP", "values")
    chop.par.callbacks.eval().text = read("td/script_chop_callbacks.py")  # the DAT docked to it
    if with_callbacks:
        root.create("textDAT", "callbacks").text = read("td/callbacks_template.py")
    execute = root.create("executeDAT", "execute")
    execute.text = read("td/execute_dat.py")
    for toggle in EXECUTE_TOGGLES:
        setattr(execute.par, toggle, True)
    return root


def run_until(td, condition, timeout=10.0, what="condition"):
    """Runs frames at about 60 fps until condition() is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        td.run_frames(1)
        time.sleep(1 / 240)


def peer(name="peer"):
    """A second DataNet client outside the fake (another device on the network)."""
    import DataNet
    return DataNet.DataNet(name)


def sensor_client(gateway, name="sensor"):
    """A connected second client: a sensor rig or lighting desk on the network."""
    client = peer(name)
    client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
    poll_until(client, client.is_connected, what=name + " connected")
    return client


def closed_at_the_gateway(gateway, expected=0, timeout=5.0):
    """The gateway's count of open connections once it has seen the closes: a
    client's close is complete on its side before the gateway has read it."""
    deadline = time.monotonic() + timeout
    while gateway.stats()["connections"] != expected:
        assert time.monotonic() < deadline, "the gateway still has %d connections" % gateway.stats()["connections"]
        time.sleep(0.01)
    return True


def poll_until(client, condition, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        client.poll()
        time.sleep(0.005)
