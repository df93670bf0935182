"""Example 3, publish_from_chop: an LFO-style CHOP published to a channel and
received back.

In TouchDesigner's textport:
    import runpy; runpy.run_path('C:/path/to/datanet-td/examples/publish_from_chop.py', init_globals=globals())

Builds /project1/publish_from_chop: a Constant CHOP `lfo` whose three channels an
Execute DAT animates as sine waves (in your own project, use an LFO CHOP), and a
DataNet component subscribed to the channel it publishes to. Each frame the
Execute DAT calls op('DataNet').PublishChop(...): the library sends at most 30
messages a second, the newest values, and they come back (Echo on) as
DataNet/values channels lfo_sine, lfo_cosine, lfo_ramp.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _network import datanet_component  # noqa: E402

CHANNEL = "project.demo.lfo"
ANIMATE = """import math


def onFrameStart(frame):
    t = absTime.seconds
    lfo = op('lfo')
    lfo.par.const0value = math.sin(t * 2 * math.pi * 0.5)
    lfo.par.const1value = math.cos(t * 2 * math.pi * 0.5)
    lfo.par.const2value = (t * 0.25) % 1.0
    if op('DataNet').par.Status.eval() == 'Connected':
        op('DataNet').PublishChop(lfo, 'CHANNEL', mode='json', rate=30)
""".replace("CHANNEL", CHANNEL)


def build(parent, **settings):
    network = parent.create(containerCOMP, "publish_from_chop")
    lfo = network.create(constantCHOP, "lfo")
    for index, name in enumerate(("sine", "cosine", "ramp")):
        getattr(lfo.par, "const%dname" % index).val = name
    comp = datanet_component(globals(), network, [CHANNEL], **settings)
    animate = network.create(executeDAT, "animate")
    animate.text = ANIMATE
    animate.par.framestart = True  # a new Execute DAT has every callback toggle off
    return network, comp


if globals().get("op") is not None and __name__ != "publish_from_chop":
    build(op("/project1") or op("/"))
