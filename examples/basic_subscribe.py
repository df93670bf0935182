"""Example 1, basic_subscribe: one channel into a Table DAT.

In TouchDesigner's textport:
    import runpy; runpy.run_path('C:/path/to/datanet-td/examples/basic_subscribe.py', init_globals=globals())

Builds /project1/basic_subscribe with a DataNet component subscribed to
project.demo.basic; every message appears as a row of DataNet/messages
(channel, data, from, timestamp), the newest 100 kept.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _network import datanet_component  # noqa: E402

CHANNEL = "project.demo.basic"


def build(parent, **settings):
    network = parent.create(containerCOMP, "basic_subscribe")
    comp = datanet_component(globals(), network, [CHANNEL], **settings)
    return network, comp


if globals().get("op") is not None and __name__ != "basic_subscribe":
    build(op("/project1") or op("/"))
