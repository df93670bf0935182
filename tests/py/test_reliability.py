"""Issue 7, scenario 10: DataNet.py re-run 1,000 times during a stream, and project
exit with the gateway black-holed, in the TD fake."""

import os
import time

from conftest import build_readme_network, run_until, sensor_client


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def threads():
    return len(os.listdir("/proc/self/task"))


def test_a_thousand_module_reruns_during_a_stream_leak_nothing(td, lib_env):
    build_readme_network(td)
    td.start()
    dat = td.op("/DataNet")
    run_until(td, lambda: dat.module.is_connected() and dat.module.status()["occupancy"], what="connected")
    rig = sensor_client(lib_env)
    fds, task_count = open_fds(), threads()
    original = dat.text
    began = time.perf_counter()
    for n in range(1000):
        rig.publish("project.demo.sensor", {"n": n})
        dat.text = original + "\n# edit %d\n" % n  # TD re-runs the module on the next access
        td.run_frames(1)
    seconds = time.perf_counter() - began
    run_until(td, lambda: dat.module.status()["counters"]["received"] == 1000, what="every message")
    stats = lib_env.stats()
    print("FIGURE module re-run: 1000 re-runs in %.1f s during a 1000-message stream; gateway connections %d "
          "(total %d); fds %d -> %d; threads %d -> %d" % (seconds, stats["connections"], stats["connections_total"],
                                                          fds, open_fds(), task_count, threads()))
    assert dat.module_runs >= 1000
    assert (stats["connections"], stats["connections_total"]) == (2, 2), "the TD client and the sensor, once each"
    assert dat.module.status()["counters"]["dropped_inbound"] == 0
    assert open_fds() <= fds + 2 and threads() <= task_count + 1


def test_exit_with_the_gateway_black_holed_is_bounded(td, lib_env):
    build_readme_network(td)
    td.start()
    dn = td.op("/DataNet").module
    run_until(td, lambda: dn.is_connected(), what="connected")
    lib_env.admin("freeze", {})
    td.run_frames(5)
    began = time.perf_counter()
    td.exit()
    elapsed = time.perf_counter() - began
    print("FIGURE exit with the gateway black-holed: %.1f ms" % (elapsed * 1000))
    assert elapsed < 0.5
    lib_env.admin("thaw", {})
