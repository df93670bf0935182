"""Shared by the example builders: the DataNet component, configured."""

import os
import runpy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def datanet_component(td_globals, parent, channels, api_key=None, api_url=None, ws_url=None):
    """Builds the DataNet component inside `parent` (not saved) and sets it up from
    the arguments or the DATANET_* environment variables."""
    builder = runpy.run_path(os.path.join(REPO, "td", "build_component.py"), init_globals=td_globals,
                             run_name="build_component")
    comp, _ = builder["build"](parent, repo=REPO, save=False)
    comp.par.Apiurl = api_url or os.environ.get("DATANET_API_URL", "https://api.datanet.art")
    comp.par.Wsurl = ws_url or os.environ.get("DATANET_WS_URL", "wss://ws.datanet.art")
    comp.par.Channels = " ".join(channels)
    if api_key:
        comp.par.Apikey = api_key
    return comp
