"""Example 2, sensor_dashboard: several sensor channels into CHOP channels.

In TouchDesigner's textport:
    import runpy; runpy.run_path('C:/path/to/datanet-td/examples/sensor_dashboard.py', init_globals=globals())

Builds /project1/sensor_dashboard with a DataNet component subscribed to three
sensor channels. Every numeric field of their JSON becomes a channel of
DataNet/values (temperature of project.demo.sensor.a -> sensor_a_temperature), with
no code: connect that CHOP to your visuals.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _network import datanet_component  # noqa: E402

CHANNELS = ["project.demo.sensor.a", "project.demo.sensor.b", "project.demo.sensor.c"]


def build(parent, **settings):
    network = parent.create(containerCOMP, "sensor_dashboard")
    comp = datanet_component(globals(), network, CHANNELS, **settings)
    return network, comp


if globals().get("op") is not None and __name__ != "sensor_dashboard":
    build(op("/project1") or op("/"))
