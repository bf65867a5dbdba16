"""`migviz host`: the figures are this host's own, read at the moment they are shown.

The real host is read, never mocked: the JSON's TLB row lies between two readings of
/proc/interrupts taken around it, a real shootdown (mprotect while another thread of this process
reads the page on another CPU) shows in the toucher's CPU column, and the live screen shows the
counts of the snapshot it holds with deltas and rates that follow from them. Fake /proc and /sys
trees stand in only for hosts that lack a file.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from helpers import drive as helpers_drive
from textual.pilot import Pilot

from core.errors import InputError
from core.host import (
    HostSnapshot,
    format_cpulist,
    host_rates,
    parse_cpulist,
    take_snapshot,
)
from core.scenario import load_scenario
from tui.app import MigvizApp
from tui.cli import main
from tui.cmd_host import host_command
from tui.screens.host import (
    CounterPanel,
    CpuShootdownPanel,
    HostApp,
    HostScreen,
    TopologyPanel,
    rate_text,
)

KEPT = ("pgmigrate_", "thp_migration_", "numa_", "nr_tlb_")


def proc_tlb_row() -> dict[int, int]:
    """/proc/interrupts' TLB row by CPU number, read here independently of core.host."""
    with open("/proc/interrupts") as stream:
        cpus = [int(word[3:]) for word in stream.readline().split()]
        for line in stream:
            words = line.split()
            if words[:1] == ["TLB:"]:
                return dict(zip(cpus, (int(word) for word in words[1:1 + len(cpus)]),
                                strict=True))
    pytest.skip("this kernel has no TLB row in /proc/interrupts")


def proc_vmstat_kept() -> list[str]:
    with open("/proc/vmstat") as stream:
        return [line.split()[0] for line in stream if line.startswith(KEPT)]


def host_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = main(["host", "--once", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    data: dict[str, object] = json.loads(out)
    return data


# ---------------------------------------------------------------------------------------------
# --once --json against the real host


def test_json_tlb_row_lies_between_two_readings(capsys: pytest.CaptureFixture[str]) -> None:
    before = proc_tlb_row()
    data = host_json(capsys)
    after = proc_tlb_row()
    assert data["cpus"] == list(before) == list(after)
    counts = data["tlb_shootdowns"]
    assert isinstance(counts, list) and len(counts) == len(before)
    for cpu, count in zip(before, counts, strict=True):
        assert before[cpu] <= count <= after[cpu], cpu
    assert data["missing"] == []


def test_json_keeps_exactly_the_migration_numa_and_tlb_counters(
        capsys: pytest.CaptureFixture[str]) -> None:
    vmstat = host_json(capsys)["vmstat"]
    assert isinstance(vmstat, dict)
    assert list(vmstat) == proc_vmstat_kept()
    assert all(isinstance(value, int) for value in vmstat.values())


def test_json_nodes_match_sysfs(capsys: pytest.CaptureFixture[str]) -> None:
    nodes = host_json(capsys)["nodes"]
    sysfs = Path("/sys/devices/system/node")
    assert isinstance(nodes, list)
    assert [node["node"] for node in nodes] == list(parse_cpulist((sysfs / "online").read_text()))
    for node in nodes:
        path = sysfs / f"node{node['node']}"
        assert node["cpus"] == list(parse_cpulist((path / "cpulist").read_text()))
        total = next(line.split()[3] for line in (path / "meminfo").read_text().splitlines()
                     if line.split()[2] == "MemTotal:")
        assert node["memory"]["total_kib"] == int(total)
        assert node["distance"] == [int(word) for word in (path / "distance").read_text().split()]


def test_once_prints_each_count(capsys: pytest.CaptureFixture[str]) -> None:
    before = proc_tlb_row()
    assert main(["host", "--once"]) == 0
    out = capsys.readouterr().out
    after = proc_tlb_row()
    for cpu in before:
        row = next(line.split() for line in out.splitlines() if line.split()[:1] == [f"CPU{cpu}"])
        assert before[cpu] <= int(row[1]) <= after[cpu]
    for name in proc_vmstat_kept():
        assert f"  {name} " in out


def test_json_needs_once(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["host", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("migviz: error: ") and err.count("\n") == 1
    assert "--once" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# A real shootdown


PROT_READ, PROT_WRITE = mmap.PROT_READ, mmap.PROT_WRITE


def test_a_real_shootdown_shows_on_the_touching_cpu() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if (os.cpu_count() or 1) < 2 or len(allowed) < 2:
        pytest.skip("needs two CPUs: one to touch the page, one to change its protection")
    main_cpu, toucher_cpu = allowed[:2]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page_size = mmap.PAGESIZE
    buffer = mmap.mmap(-1, page_size, prot=PROT_READ | PROT_WRITE)
    page = np.frombuffer(buffer, dtype=np.uint8)
    address = page.ctypes.data
    # The same page read 20,000 times in one numpy call, which releases the GIL: the toucher
    # stays running on its CPU (in this mm, with the page in its TLB) while mprotect runs.
    reread = np.lib.stride_tricks.as_strided(page, shape=(20_000, page_size),
                                             strides=(0, 1), writeable=False)
    stop, touching = threading.Event(), threading.Event()

    def toucher() -> None:
        os.sched_setaffinity(0, {toucher_cpu})  # 0: this thread
        while not stop.is_set():
            reread.sum()
            touching.set()

    old_affinity = os.sched_getaffinity(0)
    thread = threading.Thread(target=toucher, daemon=True)
    # A round whose target vCPU the hypervisor has descheduled may be deferred instead of sent
    # (KVM's paravirt flush), so rounds go on, in batches, until enough IPIs have arrived: far
    # more than the few an idle CPU receives meanwhile from the rest of the system.
    wanted, batch, rounds, grown = 200, 250, 0, 0
    try:
        os.sched_setaffinity(0, {main_cpu})
        thread.start()
        assert touching.wait(10)
        before = take_snapshot()
        while grown < wanted and rounds < 40 * batch:
            for _ in range(batch):
                # Taking write permission away must flush every TLB that may hold the page.
                assert libc.mprotect(address, page_size, PROT_READ) == 0
                assert libc.mprotect(address, page_size, PROT_READ | PROT_WRITE) == 0
            rounds += batch
            after = take_snapshot()
            grown = host_rates(before, after).tlb_deltas[after.cpus.index(toucher_cpu)] or 0
    finally:
        stop.set()
        thread.join()
        os.sched_setaffinity(0, old_affinity)
    assert grown >= wanted, (
        f"CPU{toucher_cpu} received {grown} shootdowns during {rounds} mprotect rounds")


# ---------------------------------------------------------------------------------------------
# Hosts that lack a file, and the kernel's formats


INTERRUPTS = """\
           CPU0       CPU1       CPU3
  0:         35          0          0   IO-APIC   2-edge      timer
TLB:       1200         34          7   TLB shootdowns
"""
VMSTAT = "nr_free_pages 12\nnuma_hit 40\npgmigrate_success 3\nnr_tlb_remote_flush 9\npgfault 1\n"


def fake_tree(root: Path, *, interrupts: bool = True, vmstat: bool = True,
              nodes: bool = True) -> tuple[Path, Path]:
    proc, sys = root / "proc", root / "sys"
    proc.mkdir()
    if interrupts:
        (proc / "interrupts").write_text(INTERRUPTS)
    if vmstat:
        (proc / "vmstat").write_text(VMSTAT)
    node_dir = sys / "devices/system/node"
    node_dir.mkdir(parents=True)
    if nodes:
        (node_dir / "online").write_text("0-1\n")
        for node, cpus in ((0, "0-1"), (1, "3")):
            (node_dir / f"node{node}").mkdir()
            (node_dir / f"node{node}" / "cpulist").write_text(cpus + "\n")
            (node_dir / f"node{node}" / "meminfo").write_text(
                f"Node {node} MemTotal:     2048 kB\nNode {node} MemFree:       1024 kB\n")
        (node_dir / "node0" / "distance").write_text("10 21\n")
    return proc, sys


def test_offline_cpus_keep_their_numbers(tmp_path: Path) -> None:
    proc, sys = fake_tree(tmp_path)
    snapshot = take_snapshot(proc, sys)
    assert snapshot.cpus == (0, 1, 3)
    assert snapshot.tlb_shootdowns == (1200, 34, 7)
    assert snapshot.vmstat == {"numa_hit": 40, "pgmigrate_success": 3, "nr_tlb_remote_flush": 9}
    assert [(node.node, node.cpus, node.mem_total_kib, node.distance)
            for node in snapshot.nodes] == [(0, (0, 1), 2048, (10, 21)), (1, (3,), 2048, ())]
    assert snapshot.missing == (f"{sys}/devices/system/node/node1/distance: no such file",)


def test_a_missing_interrupts_file_is_named_and_the_rest_shown(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc, sys = fake_tree(tmp_path, interrupts=False)
    snapshot = take_snapshot(proc, sys)
    assert f"{proc}/interrupts: no such file" in snapshot.missing
    assert snapshot.tlb_shootdowns == () and snapshot.vmstat["pgmigrate_success"] == 3
    args = argparse.Namespace(once=True, json=True, interval=1.0)
    assert host_command(args, proc=proc, sys=sys) == 0
    data = json.loads(capsys.readouterr().out)
    assert f"{proc}/interrupts: no such file" in data["missing"]
    assert data["tlb_shootdowns"] == [] and data["vmstat"]["numa_hit"] == 40
    assert host_command(argparse.Namespace(once=True, json=False, interval=1.0),
                        proc=proc, sys=sys) == 0
    text = capsys.readouterr().out
    assert "Missing:" in text and f"{proc}/interrupts: no such file" in text
    assert "pgmigrate_success" in text and "node1  CPUs 3" in text


def test_a_tlb_row_that_is_not_there_is_named(tmp_path: Path) -> None:
    proc, sys = fake_tree(tmp_path)
    (proc / "interrupts").write_text(INTERRUPTS.replace("TLB:", "XYZ:"))
    snapshot = take_snapshot(proc, sys)
    assert snapshot.cpus == (0, 1, 3) and snapshot.tlb_shootdowns == ()
    assert f"{proc}/interrupts: no TLB row" in snapshot.missing


def test_a_host_with_none_of_the_files_is_an_error(tmp_path: Path) -> None:
    proc, sys = fake_tree(tmp_path, interrupts=False, vmstat=False, nodes=False)
    with pytest.raises(InputError) as raised:
        host_command(argparse.Namespace(once=True, json=False, interval=1.0), proc=proc, sys=sys)
    message = str(raised.value)
    assert "\n" not in message
    for name in ("interrupts", "vmstat", "devices/system/node/online"):
        assert name in message


def test_cpulists() -> None:
    assert parse_cpulist("0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert parse_cpulist("\n") == ()
    assert format_cpulist((0, 1, 2, 3, 8, 10, 11)) == "0-3,8,10-11"
    with pytest.raises(ValueError):
        parse_cpulist("3-1")


def test_rates_are_deltas_per_second() -> None:
    before = HostSnapshot(time_ns=0, cpus=(0, 1), tlb_shootdowns=(10, 20),
                          vmstat={"pgmigrate_success": 5}, nodes=(), missing=())
    after = HostSnapshot(time_ns=2_000_000_000, cpus=(0, 1, 2), tlb_shootdowns=(14, 20, 3),
                         vmstat={"pgmigrate_success": 9, "numa_hit": 1}, nodes=(), missing=())
    rates = host_rates(before, after)
    assert rates.seconds == 2.0
    assert rates.tlb_deltas == (4, 0, None)  # CPU2 came online in between
    assert rates.tlb_per_s == (2.0, 0.0, None)
    assert rates.vmstat_deltas == {"pgmigrate_success": 4}
    assert rates.vmstat_per_s == {"pgmigrate_success": 2.0}
    with pytest.raises(ValueError):
        host_rates(after, before)


# ---------------------------------------------------------------------------------------------
# The live screen


drive = partial(helpers_drive, size=(80, 24))


def test_screen_shows_the_counts_and_their_deltas() -> None:
    app = HostApp(interval=0.05)

    async def script(pilot: Pilot[int]) -> None:
        screen = app.screen
        assert isinstance(screen, HostScreen)
        await pilot.pause(0.3)  # the timer reads a few times
        assert screen.view is not None and screen.view.readings >= 3
        screen.read_host()
        await pilot.pause()
        # No await from here on: the timer cannot replace the view while it is checked.
        view = screen.view
        assert view is not None and view.rates is not None and view.previous is not None
        previous = view.previous
        rates = view.rates
        cpu_text = screen.query_one(CpuShootdownPanel).text
        rows = {line.split()[0]: line.split() for line in cpu_text.splitlines()[1:]}
        for index, cpu in enumerate(view.snapshot.cpus):
            count = view.snapshot.tlb_shootdowns[index]
            delta = count - previous.tlb_shootdowns[index]
            name, rate, shown_delta, shown_count = rows[f"cpu{cpu}"][:4]
            assert int(shown_count) == count
            assert int(shown_delta) == delta == rates.tlb_deltas[index]
            assert rate == rate_text(delta / rates.seconds)
        assert int(rows["all"][3]) == sum(view.snapshot.tlb_shootdowns)
        counter_rows = {line.split()[0]: line.split()
                        for line in screen.query_one(CounterPanel).text.splitlines()[1:]}
        for name, value in view.snapshot.vmstat.items():
            delta = value - previous.vmstat[name]
            assert counter_rows[name][1:4] == [str(value), str(delta),
                                               rate_text(delta / rates.seconds)]
        topology = screen.query_one(TopologyPanel).text
        for node in view.snapshot.nodes:
            assert f"node{node.node}  CPUs {format_cpulist(node.cpus)}" in topology
        header = str(screen.query_one("#host-header").render())
        assert f"Δt {rates.seconds:.6f} s" in header
        await pilot.press("q")
        await pilot.pause()

    drive(app, script)
    assert app.return_code == 0


def test_a_tiny_terminal_says_so_and_recovers() -> None:
    app = HostApp(interval=0.05)

    async def script(pilot: Pilot[int]) -> None:
        screen = app.screen
        assert isinstance(screen, HostScreen)
        assert screen.has_class("-too-small")
        message = screen.query_one("#host-too-small")
        assert message.display and not screen.query_one("#host-body").display
        assert "needs at least 40×10 (now 20×6)" in str(message.render())
        await pilot.pause(0.15)
        screen.read_host()
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not screen.has_class("-too-small")
        await pilot.resize_terminal(12, 3)
        await pilot.pause()
        assert screen.has_class("-too-small")

    drive(app, script, size=(20, 6))


def test_the_main_app_can_push_and_close_it() -> None:
    app = MigvizApp(load_scenario("tiny"), paused=True)

    async def script(pilot: Pilot[int]) -> None:
        await app.push_screen(HostScreen())
        await pilot.pause()
        assert isinstance(app.screen, HostScreen)
        assert app.screen.query_one(CpuShootdownPanel).text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HostScreen)

    drive(app, script, size=(100, 30))
